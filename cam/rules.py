"""The mask rules (`--mask-rule`): from a batch's importance map (cam/maps.py) to PART's per-pixel
budget, epsilon on the important pixels and epsilon_low elsewhere. One entry of RULES per rule, beside
its function; every rule takes any map, and the CAM-free ones (random, region) ignore it.

A rule's function maps (importance (B, h, w) in [0, 1] or None, the batch x, the method's settings
`s`, the rule's own flags by setting name) to the (B, 3, H, W) bool map of the elements that keep
epsilon; the region rule gives its budget map itself. `epsilon_map` turns either into the float32 ε map
the attack takes. A new rule is its function and one entry, here (its flags included).

  official  what the official `craft_weight_matrix` + `generate_weighted_eps` compute under their
            pinned torchvision 0.14, batched on the device: the float map as a 32-bit PIL image, PIL
            bicubic resize (a = -0.5), squared, coloured with matplotlib's 256-entry `jet` table,
            z-scored over the whole 3xHxW overlay, clamped at 1; weight > 1 gets epsilon, the rest
            epsilon_low. A zero-variance overlay gives NaN weights and so epsilon_low everywhere, as
            upstream. A constant map (all zeros after the min-max) is NaN under torchcam 0.3.2, the
            version the official code pins (min-max without an epsilon: 0 / 0), so it too gets
            epsilon_low everywhere.
  cam       the paper's intent without the colour map: bilinear upsampling, z-score over HxW, z > 1
            gets epsilon, the same for all three channels.
  top       the paper's rule at a fixed share s: bilinear upsampling, epsilon on each image's
            round(s * H * W) pixels of highest importance (ties broken by torch.topk), all channels.
  region    no map: fixed budgets per image quadrant (the paper's Figure 1).
  random    no map: each element keeps epsilon with probability p, drawn per batch from the training
            stream (the control of PART's placement).

Torch-free at import (the command line lists the rules and their flags): each function imports torch
and numpy when it runs.
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from common.argtypes import Flag, budget, number

# The image quadrants of --mask-rule region (Figure 1 of the paper), upper / bottom, left / right.
QUADRANTS = ("ul", "ur", "bl", "br")


# --- the official rule's constant tables: PIL's bicubic resize and matplotlib's jet, built once --

def _pil_bicubic(x: float) -> float:
    # PIL's bicubic filter, a = -0.5.
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


@functools.lru_cache(maxsize=None)
def pil_bicubic_matrix(in_size: int, out_size: int):
    """(out, in) float64 matrix of PIL's separable bicubic resample (Resample.c, precompute_coeffs).

    PIL truncates the kernel at the borders and renormalises the taps, unlike torch's bicubic.
    """
    import numpy as np
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    m = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = np.array([_pil_bicubic((j - center + 0.5) / filterscale) for j in range(lo, hi)])
        total = w.sum()
        m[i, lo:hi] = w / total if total != 0.0 else w
    return m


@functools.lru_cache(maxsize=None)
def _jet_table():
    import matplotlib
    import numpy as np
    return matplotlib.colormaps["jet"](np.arange(256))[:, :3].astype(np.float64)


@functools.lru_cache(maxsize=None)
def _table(name: str, device, *args: int):
    # Built once per device: no host-to-device copy per batch.
    import torch
    data = pil_bicubic_matrix(*args) if name == "bicubic" else _jet_table()
    return torch.from_numpy(data).to(device)


# --- the monotone rules' pieces ------------------------------------------------------------------

def cam_upsampled(cam, size: int):
    """(B, 1, size, size): the map upsampled bilinearly, as the cam and top rules see it."""
    import torch.nn.functional as F
    return F.interpolate(cam[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)


def cam_zscore(cam, size: int):
    """(B, 1, size, size): bilinear-upsampled map z-scored over HxW (population std)."""
    up = cam_upsampled(cam, size)
    flat = up.flatten(1)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1, correction=0)[:, None, None, None]
    return (up - mean) / std


def top_pixels(score, share: float, largest: bool = True):
    """(B, 1, H, W) bool: each image's round(share * H * W) pixels of highest `score` (of lowest with
    largest=False); ties are broken by torch.topk."""
    import torch
    flat = score.flatten(1)
    k = max(1, min(flat.shape[1], round(share * flat.shape[1])))
    idx = flat.topk(k, dim=1, largest=largest).indices
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, idx, True)
    return chosen.view(score.shape)


def region_map(size: int, budgets: dict[str, float], default: float, device="cpu"):
    """(1, 3, size, size) fixed per-quadrant budget (the paper's Figure 1); rows/cols split at size // 2."""
    import torch
    h = size // 2
    out = torch.empty(1, 3, size, size, dtype=torch.float32, device=device)
    for q, (rows, cols) in zip(QUADRANTS, [(slice(0, h), slice(0, h)), (slice(0, h), slice(h, None)),
                                            (slice(h, None), slice(0, h)), (slice(h, None), slice(h, None))]):
        out[:, :, rows, cols] = budgets.get(q, default)
    return out


def region_list(text: str) -> dict[str, float]:
    """--region-eps 'ul=6/255,ur=12/255,bl=12/255,br=12/255' -> {quadrant: budget}."""
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in QUADRANTS:
            raise argparse.ArgumentTypeError(
                f"invalid --region-eps item {item!r}: use {','.join(q + '=8/255' for q in QUADRANTS)}")
        out[key.strip()] = budget(value.strip())
    return out


# --- the rules: rule(importance, x, s, **its flags) -> the elements that keep epsilon (region: the budget)

def official(importance, x, s):
    """The official code's rule, per channel: the (B, 3, H, W) elements whose weight (the clamped z-scored
    jet overlay of the resized map, float32) exceeds 1."""
    import torch
    h, w = importance.shape[-2:]
    size, dev = x.shape[-1], importance.device
    # torchcam 0.3.2: a constant map (all zeros after our min-max) is NaN.
    constant = importance.flatten(-2).amax(-1) == 0
    cam = torch.where(constant[..., None, None], torch.full_like(importance, float("nan")), importance)
    ry = _table("bicubic", dev, h, size)
    rx = _table("bicubic", dev, w, size)
    # PIL 'F' image: horizontal pass then vertical pass, double accumulation, float32 storage.
    up = (cam.double() @ rx.t()).float()
    up = (ry @ up.double()).float()
    sq = up * up                                               # numpy float32 ** 2
    # matplotlib Colormap.__call__ on floats: x * N in float32, x == N -> N - 1, truncate,
    # >= N -> the 'over' colour (the last entry), NaN -> 'bad' (transparent black).
    xa = sq * 256.0
    xa = torch.where(xa == 256.0, torch.full_like(xa, 255.0), xa)
    idx = torch.nan_to_num(xa, nan=0.0).clamp(0, 255).long()
    rgb = _table("jet", dev)[idx]                               # (B, S, S, 3) float64
    rgb = torch.where(torch.isnan(xa)[..., None], torch.zeros_like(rgb), rgb)
    rgb = (255.0 * rgb) / 255.0
    flat = rgb.flatten(1)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1, correction=0)[:, None, None, None]
    z = (rgb - mean) / std
    z = torch.clamp(z, min=1.0)       # upstream clamp(weight, 1, weight.max()); NaN stays NaN
    weight = z.float().permute(0, 3, 1, 2).contiguous()
    return weight > 1


def zscore(importance, x, s):
    """The z-scored bilinear map above 1, the same for the three channels."""
    return (cam_zscore(importance, x.shape[-1]) > 1).expand(-1, 3, -1, -1)


def top(importance, x, s, top_share: float):
    """Each image's top --top-share of bilinear map values, the same for the three channels."""
    return top_pixels(cam_upsampled(importance, x.shape[-1]), top_share).expand(-1, 3, -1, -1)


def region(importance, x, s, region_eps: dict, **_):
    """Figure 1: fixed per-quadrant budgets (the budget map itself, (1, 3, H, W))."""
    return region_map(x.shape[-1], region_eps, s.epsilon, x.device)


def region_start_radius(s, region_start: str, **_) -> float | None:
    """The region rule's random start: within the region map itself (--region-start map, the paper's
    Figure 1: None, the attack's own budget) or in +-epsilon (--region-start epsilon, as PART's part_pgd)."""
    return None if region_start == "map" else s.epsilon


def random_placement(importance, x, s, random_share: float):
    """PART's share of full-budget elements placed at random: each element keeps epsilon with
    probability --random-share, drawn from the global (training) RNG, so a run is reproducible and
    resumes bit for bit (the checkpoint holds that RNG's state)."""
    import torch
    return torch.rand(x.shape, device=x.device) < random_share


@dataclass(frozen=True)
class MaskRule:
    name: str
    help: str
    fn: Callable                                   # fn(importance, x, s, **flags): one of the rules above
    reads_map: bool = True                         # False: CAM-free, the map is not computed
    gives_budget: bool = False                     # fn returns the ε map itself (region), not a bool map
    flags: tuple[Flag, ...] = field(default=())    # read only by this rule, refused without it
    start_radius: Callable | None = None           # (s, **flags) -> the random start's radius; None: +-epsilon


_share = number(high=1.0, low_open=True, high_open=True)
RULES = {r.name: r for r in (
    MaskRule("official", "the upstream jet-colour-map rule", official),
    MaskRule("cam", "z-scored bilinear map", zscore),
    # The rule the paper describes, at a chosen share: monotone in the map, the same for the three channels.
    MaskRule("top", "the paper's rule at a fixed share: epsilon on each image's top --top-share of bilinear map "
             "values (per pixel, all three channels)", top, flags=(
        Flag("--top-share", dict(type=_share, default=None, metavar="S",
                                 help="with --mask-rule top: the share of each image's pixels, highest map value "
                                      "first, that keep --epsilon (rounded to whole pixels; the rest get "
                                      "--low-epsilon)"), required=True),)),
    # Figure 1 of the paper: fixed budgets per quadrant.
    MaskRule("region", "fixed per-quadrant budgets from --region-eps, no map (Figure 1)", region,
             reads_map=False, gives_budget=True, start_radius=region_start_radius, flags=(
        Flag("--region-eps", dict(type=region_list, default={}, metavar="LIST",
                                  help="with --mask-rule region: ul=,ur=,bl=,br= budgets (missing quadrants "
                                       "get --epsilon)")),
        Flag("--region-start", dict(default="map", choices=("map", "epsilon"),
                                    help="with --mask-rule region: the attack's random start spans the region map "
                                         "itself (map, as the paper's Figure 1) or +-epsilon (epsilon, as PART's "
                                         "part_pgd and the random rule)")),)),
    # The control of PART's placement: PART's share of full-budget elements, placed at random.
    MaskRule("random", "each element keeps --epsilon with probability --random-share, no map (the control of "
             "PART's placement)", random_placement, reads_map=False, flags=(
        Flag("--random-share", dict(type=_share, default=None, metavar="P",
                                    help="with --mask-rule random: probability that an element keeps --epsilon "
                                         "(the rest get --low-epsilon)"), required=True),)),
)}
CAM_FREE_RULES = tuple(name for name, rule in RULES.items() if not rule.reads_map)


def budget_from(important, epsilon: float, low_epsilon: float):
    """float32 epsilon where `important`, low_epsilon elsewhere (Python scalars: no host copy)."""
    import torch
    return torch.where(important, epsilon, low_epsilon).float()


def apply_rule(s, importance, x):
    """The rule s.mask_rule's answer for the batch x: the (B, 3, H, W) bool map of the elements that keep
    epsilon (the region rule: its budget map). `importance`: the batch's map, or None for a CAM-free rule."""
    return RULES[s.mask_rule].fn(importance, x, s, **s.rule_params)


def epsilon_map(s, importance, x):
    """PART's float32 ε map of the batch x under the rule s.mask_rule."""
    out = RULES[s.mask_rule].fn(importance, x, s, **s.rule_params)      # apply_rule, written out
    return out if RULES[s.mask_rule].gives_budget else budget_from(out, s.epsilon, s.low_epsilon)


def start_radius(s) -> float | None:
    """The radius of the random start after the warm-up: +-epsilon, as the official part_pgd, for every
    rule (the random rule too) unless the rule's entry says otherwise (the region rule with --region-start
    map spans the region map itself: None, the attack's own budget)."""
    rule = RULES[s.mask_rule]
    return s.epsilon if rule.start_radius is None else rule.start_radius(s, **s.rule_params)


def rule_params(args) -> dict:
    """The values of the chosen rule's own flags, by setting name (what its function reads)."""
    return {f.dest: getattr(args, f.dest) for f in RULES[args.mask_rule].flags}


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
