"""The mask rules (--mask-rule): how PART's ε map is made. The only table of them, torch-free: each
rule's name, its help, whether it needs a CAM, its own flags, and its builder, named by module and
function and imported only when a run uses it (so `--help` and the report never import torch). The
command line, its checks, the resume checks, the report, the method labels and the budget policies
derive from it.

A builder of a CAM rule maps (CAM (B, h, w) in [0, 1], image size, **the rule's flags) to the
(B, 3, size, size) bool map of the elements that keep the full budget; a builder of a CAM-free rule
maps (args, image size, device) to (its budget policy, the random start's span: None for the map
itself, whether the log tracks the full-budget share). A new rule is one entry here and its builder.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from utils.argtypes import Flag, imported, number, region_list


@dataclass(frozen=True)
class MaskRule:
    name: str
    help: str
    builder: str                                   # "module:function", imported by build()
    needs_cam: bool = True
    flags: tuple[Flag, ...] = field(default=())    # read only by this rule, refused without it

    def build(self) -> Callable:
        return imported(self.builder)


RULES = {r.name: r for r in (
    MaskRule("official", "the upstream jet-colour-map rule", "cam.masks:official_important"),
    MaskRule("cam", "z-scored bilinear CAM", "cam.masks:zscore_important"),
    # The rule the paper describes, at a chosen share: monotone in the CAM, the same for the three channels.
    MaskRule("top", "the paper's rule at a fixed share: epsilon on each image's top --top-share of bilinear CAM "
             "values (per pixel, all three channels)", "cam.masks:top_important", flags=(
        Flag("--top-share", dict(type=number(high=1.0, low_open=True, high_open=True), default=None, metavar="S",
                                 help="with --mask-rule top: the share of each image's pixels, highest CAM first, "
                                      "that keep --epsilon (rounded to whole pixels; the rest get --low-epsilon)"),
             required=True),)),
    # Figure 1 of the paper: fixed budgets per quadrant.
    MaskRule("region", "fixed per-quadrant budgets from --region-eps, no CAM (Figure 1)", "utils.budgets:region_budget",
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
             "PART's placement)", "utils.budgets:random_budget", needs_cam=False, flags=(
        Flag("--random-share", dict(type=number(high=1.0, low_open=True, high_open=True), default=None,
                                    metavar="P", help="with --mask-rule random: probability that an element "
                                                      "keeps --epsilon (the rest get --low-epsilon)"),
             required=True),)),
)}
MASK_RULES = tuple(RULES)
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
