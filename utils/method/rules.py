"""The mask rules (--mask-rule): how PART's ε map is made. The only table of them, torch-free: each
rule's name, its help, whether it needs a CAM, its own flags, and its builder: a function below that
imports the torch code it calls only when a run uses the rule (so `--help` and the report never import
torch). The command line, its checks, the resume checks, the report, the method labels and the budget
policies derive from it.

A builder of a CAM rule maps (CAM (B, h, w) in [0, 1], image size, **the rule's flags) to the
(B, 3, size, size) bool map of the elements that keep the full budget; a builder of a CAM-free rule
maps (args, image size, device) to (its budget policy, the random start's span: None for the map
itself, whether the log tracks the full-budget share). A new rule is its builder and one entry, here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from utils.argtypes import Flag, number, region_list


# --- the builders --------------------------------------------------------------------------------
def official_rule(cam, size: int):
    """The official code's rule (cam.masks.official_important: the jet colour map of the resized CAM)."""
    from cam.masks import official_important
    return official_important(cam, size)


def cam_rule(cam, size: int):
    """The paper's intent without the colour map: the z-scored bilinear CAM above 1 (cam.masks)."""
    from cam.masks import zscore_important
    return zscore_important(cam, size)


def top_rule(cam, size: int, top_share: float):
    """The paper's rule at a fixed share: each image's top --top-share of bilinear CAM values (cam.masks)."""
    from cam.masks import top_important
    return top_important(cam, size, top_share)


def start_radius(args) -> float | None:
    """The radius of the random start after the warm-up: +-epsilon, as the official part_pgd, for every
    rule (the random rule too) but the region rule with --region-start map, whose start spans the region
    map itself (None: the attack's own budget)."""
    return None if args.mask_rule == "region" and getattr(args, "region_start", "map") == "map" else args.epsilon


def region_rule(args, image_size: int, device):
    """Figure 1: fixed per-quadrant budgets; the random start spans the region map itself (--region-start
    map, the default) or +-epsilon (--region-start epsilon: PART's part_pgd start, as the random rule)."""
    from cam.masks import region_map
    from utils.method.budgets import FixedBudget
    return FixedBudget(region_map(image_size, args.region_eps, args.epsilon, device)), start_radius(args), False


def random_rule(args, image_size: int, device):
    """The placement control: PART's share of full-budget elements, placed at random; the start in
    +-epsilon, as PART's part_pgd."""
    from utils.method.budgets import RandomBudget
    return RandomBudget(args.random_share, args.epsilon, args.low_epsilon), start_radius(args), True


@dataclass(frozen=True)
class MaskRule:
    name: str
    help: str
    builder: Callable                              # one of the builders above
    needs_cam: bool = True
    flags: tuple[Flag, ...] = field(default=())    # read only by this rule, refused without it


RULES = {r.name: r for r in (
    MaskRule("official", "the upstream jet-colour-map rule", official_rule),
    MaskRule("cam", "z-scored bilinear CAM", cam_rule),
    # The rule the paper describes, at a chosen share: monotone in the CAM, the same for the three channels.
    MaskRule("top", "the paper's rule at a fixed share: epsilon on each image's top --top-share of bilinear CAM "
             "values (per pixel, all three channels)", top_rule, flags=(
        Flag("--top-share", dict(type=number(high=1.0, low_open=True, high_open=True), default=None, metavar="S",
                                 help="with --mask-rule top: the share of each image's pixels, highest CAM first, "
                                      "that keep --epsilon (rounded to whole pixels; the rest get --low-epsilon)"),
             required=True),)),
    # Figure 1 of the paper: fixed budgets per quadrant.
    MaskRule("region", "fixed per-quadrant budgets from --region-eps, no CAM (Figure 1)", region_rule,
             needs_cam=False, flags=(
        Flag("--region-eps", dict(type=region_list, default={}, metavar="LIST",
                                  help="with --mask-rule region: ul=,ur=,bl=,br= budgets (missing quadrants "
                                       "get --epsilon)")),
        Flag("--region-start", dict(default="map", choices=("map", "epsilon"),
                                    help="with --mask-rule region: the attack's random start spans the region map "
                                         "itself (map, as the paper's Figure 1) or +-epsilon (epsilon, as PART's "
                                         "part_pgd and the random rule)")),)),
    # The control of PART's placement: PART's share of full-budget elements, placed at random.
    MaskRule("random", "each element keeps --epsilon with probability --random-share, no CAM (the control of "
             "PART's placement)", random_rule, needs_cam=False, flags=(
        Flag("--random-share", dict(type=number(high=1.0, low_open=True, high_open=True), default=None,
                                    metavar="P", help="with --mask-rule random: probability that an element "
                                                      "keeps --epsilon (the rest get --low-epsilon)"),
             required=True),)),
)}
CAM_FREE_RULES = tuple(name for name, rule in RULES.items() if not rule.needs_cam)


def rule_flag_errors(args) -> list[str]:
    """The command line's mistakes about rule flags: one given without its rule, a required one missing."""
    errors = []
    for rule in RULES.values():
        for f in rule.flags:
            given = getattr(args, f.dest) != f.kwargs.get("default")
            if given and args.mask_rule != rule.name:
                errors.append(f"{f.name} needs --mask-rule {rule.name}")
            elif f.required and not given and args.mask_rule == rule.name:
                errors.append(f"--mask-rule {rule.name} needs {f.name} {f.kwargs.get('metavar', '')}".rstrip())
    return errors


def rule_params(args) -> dict:
    """The values of the chosen rule's own flags, by setting name (what its builder reads)."""
    return {f.dest: getattr(args, f.dest) for f in RULES[args.mask_rule].flags}


def important_map(cam, size: int, rule: str = "official", **params):
    """(B, 3, size, size) bool: the elements that keep the full budget; `params`: the rule's own flags."""
    if rule not in RULES or not RULES[rule].needs_cam:
        raise ValueError(f"unknown CAM mask rule {rule!r}; choose from "
                         f"{', '.join(n for n, r in RULES.items() if r.needs_cam)}")
    return RULES[rule].builder(cam, size, **params)


def epsilon_map(cam, size: int, epsilon: float, low_epsilon: float, rule: str = "official", **params):
    """(B, 3, size, size) float32 per-pixel budget on the CAM's device."""
    from cam.masks import budget_from
    return budget_from(important_map(cam, size, rule, **params), epsilon, low_epsilon)
