"""L-inf PGD with an element-wise budget (the attack of PART, of plain AT and of the PGD-20 evaluation)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget, random_start_point, sign_step


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: Budget, step_size: float,
        steps: int, start: str = "uniform_clipped", start_epsilon: Budget | None = None,
        projection: str = "clamp",
        start_noise: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy PGD inside the box |x_adv - x| <= epsilon (element-wise), clipped to [0, 1].

    epsilon is a float or a tensor broadcastable to x (PART's epsilon map). `start` is one of
    attacks.common.STARTS; the uniform starts draw in +-start_epsilon (default: epsilon). The default,
    uniform_clipped, is torchattacks' PGD (the official evaluation and AT warm-up); PART's training
    attack uses the unclipped `uniform` start of the official `part_pgd`, MART the `normal` start.
    `projection` (attacks.common.PROJECTIONS) is the expression for a float budget: torchattacks'
    clamp by default, the official mart_loss's min/max for MART.
    `start_noise`: the start's U[0, 1) draws, given instead of drawn (the evaluation's per-image streams).
    The caller chooses the model's mode (the official code attacks in eval mode).
    """
    x = x.detach()
    x_adv = random_start_point(x, epsilon if start_epsilon is None else start_epsilon, start, start_noise)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        x_adv = sign_step(x_adv, x, F.cross_entropy(model(x_adv), y), step_size, epsilon, projection)
    return x_adv.detach()
