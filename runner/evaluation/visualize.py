"""Mask grids like the paper's Figure 2: image, CAM, the epsilon map per channel, the perturbation."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

COLUMNS = ("image", "map", "ε map R", "ε map G", "ε map B", "perturbation")     # map: the importance map (--map)


def grid_panels(image: torch.Tensor, cam: torch.Tensor | None, eps: torch.Tensor,
                perturbation: torch.Tensor) -> dict[str, np.ndarray]:
    """Arrays for each column: (N, H, W, 3) images, (N, H, W) CAM (NaN where there is none),
    (N, 3, H, W) budgets, (N, H, W, 3) perturbation scaled to fill [0, 1] around 0.5."""
    n, _, h, w = image.shape
    if cam is None:
        cam_up = torch.full((n, h, w), float("nan"))
    else:
        cam_up = F.interpolate(cam[:, None].float().cpu(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    eps = eps.detach().float().cpu().expand(n, 3, h, w)
    scale = 2 * float(eps.max()) if float(eps.max()) > 0 else 1.0
    delta = perturbation.detach().float().cpu() / scale + 0.5
    return {
        "image": image.detach().cpu().permute(0, 2, 3, 1).numpy(),
        "cam": cam_up.numpy(),
        "eps": eps.numpy(),
        "perturbation": delta.clamp(0, 1).permute(0, 2, 3, 1).numpy(),
    }


def save_mask_grid(panels: dict[str, np.ndarray], path: str | os.PathLike, title: str = "") -> None:
    """One row per image, the columns of COLUMNS; the ε panels use two colours (ε_low, ε). Drawn on a bare
    matplotlib Figure, imported here: no pyplot (about half a second to import), no backend chosen or switched."""
    from matplotlib.figure import Figure
    n = len(panels["image"])
    eps = panels["eps"]
    lo, hi = float(eps.min()), float(eps.max())
    fig = Figure(figsize=(1.6 * len(COLUMNS), 1.6 * n + 0.4))
    axes = fig.subplots(n, len(COLUMNS), squeeze=False)
    for i in range(n):
        row = [panels["image"][i], panels["cam"][i], eps[i, 0], eps[i, 1], eps[i, 2], panels["perturbation"][i]]
        for j, (ax, data) in enumerate(zip(axes[i], row)):
            if j == 1:
                ax.imshow(panels["image"][i])
                if not np.isnan(data).all():
                    ax.imshow(data, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            elif 2 <= j <= 4:
                ax.imshow(data, cmap="coolwarm", vmin=lo, vmax=hi if hi > lo else lo + 1e-6,
                          interpolation="nearest")
            else:
                ax.imshow(data, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(COLUMNS[j], fontsize=8)
    values = ", ".join(f"{255 * v:.3g}/255" for v in np.unique(eps))
    fig.suptitle(f"{title}  (ε values: {values}; blue = lower budget)".strip(), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
