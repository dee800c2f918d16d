"""The TRADES inner maximisation: KL(f(x) || f(x_adv)) under an element-wise L-inf budget."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget, random_start_point, sign_step


def trades(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, epsilon: Budget, step_size: float,
           steps: int, start: str = "normal", start_epsilon: Budget | None = None,
           projection: str = "minmax") -> torch.Tensor:
    """Start at x + 0.001 * N(0, 1) (the official TRADES and `part_trades_loss` always do), then sign
    steps on the summed KL divergence KL(f(x) || f(x_adv)) (nn.KLDivLoss(log f(x_adv), f(x))),
    projected onto +-epsilon and clipped to [0, 1] (a float budget with the official trades_loss's
    min/max expression, a map with element_wise_clamp's: attacks.common.project).

    The clean softmax is computed once: with the model in eval mode it is the same at every step
    (the official code recomputes it each step; tests/test_losses.py shows the result is identical).
    `y` is unused; it keeps the common attack signature.
    """
    x = x.detach()
    with torch.no_grad():
        target = F.softmax(model(x), dim=1)
    x_adv = random_start_point(x, epsilon if start_epsilon is None else start_epsilon, start)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), target, reduction="sum")
        x_adv = sign_step(x_adv, x, loss, step_size, epsilon, projection)
    return x_adv.detach()
