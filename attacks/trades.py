"""The TRADES inner maximisation: KL(f(x_adv) || f(x)) under an element-wise L-inf budget."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget, project, random_start_point


def trades(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: Budget, step_size: float,
           steps: int, random_start: bool = True, start_epsilon: Budget | None = None) -> torch.Tensor:
    """Start at x + 0.001 * N(0, 1) (start_epsilon is not used), then sign steps on the summed KL
    divergence to the clean softmax, projected onto +-epsilon and clipped to [0, 1] (`part_trades_loss`).

    The clean softmax is computed once: with the model in eval mode it is the same at every step
    (the official code recomputes it each step; tests/test_losses.py shows the result is identical).
    `y` is unused; it keeps the common attack signature.
    """
    x = x.detach()
    with torch.no_grad():
        target = F.softmax(model(x), dim=1)
    x_adv = random_start_point(x, 0.0, "normal") if random_start else x
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), target, reduction="sum")
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = project(x_adv.detach() + step_size * grad.sign(), x, epsilon)
    return x_adv.detach()
