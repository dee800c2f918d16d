"""L-inf PGD with an element-wise budget (the attack of PART, and of plain AT when the budget is a float)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget, project, random_start_point


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: Budget, step_size: float,
        steps: int, random_start: bool = True, start_epsilon: Budget | None = None,
        start: str = "uniform") -> torch.Tensor:
    """Cross-entropy PGD inside the box |x_adv - x| <= epsilon (element-wise), clipped to [0, 1].

    epsilon is a float or a tensor broadcastable to x (PART's epsilon map). The start is x plus
    uniform noise in +-start_epsilon (default: epsilon), not clipped before the first step, as
    the official `part_pgd`; start="normal" uses x + 0.001 * N(0, 1) instead (MART's attack).
    Gradients are taken with respect to the input only. The caller chooses the model's mode (the
    official code attacks in eval mode).
    """
    x = x.detach()
    radius = epsilon if start_epsilon is None else start_epsilon
    x_adv = random_start_point(x, radius, start) if random_start else x
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon)
    return x_adv.detach()
