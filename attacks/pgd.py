"""PGD-AT: L-inf PGD with an element-wise budget (the attack of PART, of plain AT and of the PGD-20
evaluation), and AT's objective, the cross-entropy on the attacked batch."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget, Projection, Start, clamp_projection, sign_step, uniform_clipped_start
from models.zoo import eval_mode


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: Budget, step_size: float,
        steps: int, start: Start = uniform_clipped_start, start_epsilon: Budget | None = None,
        project: Projection = clamp_projection, start_noise: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy PGD inside the box |x_adv - x| <= epsilon (element-wise), clipped to [0, 1].

    epsilon is a float or a tensor broadcastable to x (PART's epsilon map). `start` (attacks.common)
    draws in +-start_epsilon (default: epsilon): uniform_clipped_start, torchattacks' PGD, by default
    (the official evaluation and AT warm-up); PART's training attack starts unclipped (uniform_start,
    the official `part_pgd`), MART at x + 0.001 N(0, 1) (normal_start). `project` (attacks.common) is
    the expression for a float budget: torchattacks' clamp by default, the official mart_loss's
    min/max for MART. `start_noise`: the start's U[0, 1) draws, given instead of drawn (the
    evaluation's per-image streams). The model runs in eval mode (as the official code attacks; its
    mode is restored afterwards).
    """
    x = x.detach()
    with eval_mode(model):
        x_adv = start(x, epsilon if start_epsilon is None else start_epsilon, start_noise)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            x_adv = sign_step(x_adv, x, F.cross_entropy(model(x_adv), y), step_size, epsilon, project)
    return x_adv.detach()


def at_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PGD-AT (Madry et al.) and MMA-AT: cross-entropy on the attacked batch (in the caller's mode: train)."""
    return F.cross_entropy(model(x_adv), y)
