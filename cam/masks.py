"""From a CAM to PART's per-pixel budget: epsilon on the important pixels, epsilon_low elsewhere.

Rules
- official: what the official `craft_weight_matrix` + `generate_weighted_eps` compute under their
  pinned torchvision 0.14, batched on the device: the float CAM as a 32-bit PIL image, PIL bicubic
  resize (a = -0.5), squared, coloured with matplotlib's 256-entry `jet` table, z-scored over the
  whole 3xHxW overlay, clamped at 1; weight > 1 gets epsilon, the rest epsilon_low. A zero-variance
  overlay gives NaN weights and so epsilon_low everywhere, as upstream. A constant CAM (all zeros
  after our normalisation) is NaN under torchcam 0.3.2, the version the official code pins (min-max
  without an epsilon: 0 / 0), so it too gets epsilon_low everywhere.
- cam: the paper's intent without the colour map: bilinear upsampling, z-score over HxW, z > 1 gets
  epsilon, the same for all three channels.
- top: the paper's rule at a fixed share s: bilinear upsampling, epsilon on each image's
  round(s * H * W) pixels of highest CAM (ties broken by torch.topk), the same for all three channels,
  so that every image has exactly the same share of full-budget elements.
"""
from __future__ import annotations

import functools

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F

from cam import QUADRANTS



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
def pil_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) float64 matrix of PIL's separable bicubic resample (Resample.c, precompute_coeffs).

    PIL truncates the kernel at the borders and renormalises the taps, unlike torch's bicubic.
    """
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
def _jet_table() -> np.ndarray:
    return matplotlib.colormaps["jet"](np.arange(256))[:, :3].astype(np.float64)


@functools.lru_cache(maxsize=None)
def _table(name: str, device: torch.device, *args: int) -> torch.Tensor:
    # Built once per device: no host-to-device copy per batch.
    data = pil_bicubic_matrix(*args) if name == "bicubic" else _jet_table()
    return torch.from_numpy(data).to(device)


def torchcam_nan(cam: torch.Tensor) -> torch.Tensor:
    """What torchcam 0.3.2 makes of a map: a constant map (all zeros after our min-max) is NaN."""
    constant = cam.flatten(-2).amax(-1) == 0
    return torch.where(constant[..., None, None], torch.full_like(cam, float("nan")), cam)


def official_weight(cam: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, size, size) float32 weight of the official rule (the clamped z-scored jet overlay)."""
    b, h, w = cam.shape
    dev = cam.device
    cam = torchcam_nan(cam)
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
    return z.float().permute(0, 3, 1, 2).contiguous()


def cam_zscore(cam: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, size, size): bilinear-upsampled CAM z-scored over HxW (population std)."""
    up = cam_upsampled(cam, size)
    flat = up.flatten(1)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1, correction=0)[:, None, None, None]
    return (up - mean) / std


def top_pixels(score: torch.Tensor, share: float, largest: bool = True) -> torch.Tensor:
    """(B, 1, H, W) bool: each image's round(share * H * W) pixels of highest `score` (of lowest with
    largest=False); ties are broken by torch.topk."""
    flat = score.flatten(1)
    k = max(1, min(flat.shape[1], round(share * flat.shape[1])))
    idx = flat.topk(k, dim=1, largest=largest).indices
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, idx, True)
    return chosen.view(score.shape)


def cam_upsampled(cam: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, size, size): the CAM upsampled bilinearly, as the cam and top rules see it."""
    return F.interpolate(cam[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)


# The CAM rules' maps (the builders official_rule, cam_rule, top_rule of utils/method/rules.py call them): the
# (B, 3, size, size) bool map of the elements that keep the full budget, from the CAM and the rule's own flags.

def official_important(cam: torch.Tensor, size: int) -> torch.Tensor:
    return official_weight(cam, size) > 1


def zscore_important(cam: torch.Tensor, size: int) -> torch.Tensor:
    return (cam_zscore(cam, size) > 1).expand(-1, 3, -1, -1)


def top_important(cam: torch.Tensor, size: int, top_share: float) -> torch.Tensor:
    return top_pixels(cam_upsampled(cam, size), top_share).expand(-1, 3, -1, -1)


def budget_from(important: torch.Tensor, epsilon: float, low_epsilon: float) -> torch.Tensor:
    """float32 epsilon where `important`, low_epsilon elsewhere (Python scalars: no host copy)."""
    return torch.where(important, epsilon, low_epsilon).float()


def region_map(size: int, budgets: dict[str, float], default: float,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 3, size, size) fixed per-quadrant budget (the paper's Figure 1); rows/cols split at size // 2."""
    h = size // 2
    out = torch.empty(1, 3, size, size, dtype=torch.float32, device=device)
    for q, (rows, cols) in zip(QUADRANTS, [(slice(0, h), slice(0, h)), (slice(0, h), slice(h, None)),
                                            (slice(h, None), slice(0, h)), (slice(h, None), slice(h, None))]):
        out[:, :, rows, cols] = budgets.get(q, default)
    return out
