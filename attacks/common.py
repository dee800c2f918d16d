"""Pieces every attack shares: the budget type, the random start and the projection."""
from __future__ import annotations

from typing import Union

import torch

Budget = Union[float, torch.Tensor]


def random_start_point(x: torch.Tensor, radius: Budget, kind: str = "uniform") -> torch.Tensor:
    """x plus noise: 'uniform' in +-radius (PGD-AT, PART), or 'normal' 0.001 * N(0, 1) (TRADES, MART)."""
    if kind == "normal":
        return x + 0.001 * torch.randn_like(x)
    # (2U - 1) * r with U ~ U[0, 1): the same bits whether r is a float or a tensor of that float,
    # which keeps PART with epsilon_low == epsilon identical to plain AT.
    return x + (torch.rand_like(x) * 2 - 1) * radius


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: Budget) -> torch.Tensor:
    """Clamp x_adv - x element-wise to [-epsilon, epsilon], then the image to [0, 1]."""
    if torch.is_tensor(epsilon):
        delta = torch.maximum(torch.minimum(x_adv - x, epsilon), -epsilon)
    else:
        delta = torch.clamp(x_adv - x, -epsilon, epsilon)
    return torch.clamp(x + delta, 0.0, 1.0)


def repeat_budget(epsilon: Budget, batch: int, k: int) -> Budget:
    """Tile a per-example budget (B, ...) to k stacked copies of the batch (k*B, ...)."""
    if torch.is_tensor(epsilon) and epsilon.dim() > 0 and epsilon.shape[0] == batch and k > 1:
        return epsilon.repeat(k, *([1] * (epsilon.dim() - 1)))
    return epsilon
