"""TRADES (Zhang et al. 2019) and PART-T: the inner maximisation of KL(f(x) || f(x_adv)) under an
element-wise L-inf budget, and the objective CE(f(x), y) + beta * KL(f(x) || f(x_adv))."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget, Projection, Start, minmax_projection, normal_start, sign_step
from models.zoo import eval_mode


def trades(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, epsilon: Budget, step_size: float,
           steps: int, start: Start = normal_start, start_epsilon: Budget | None = None,
           project: Projection = minmax_projection) -> torch.Tensor:
    """Start at x + 0.001 * N(0, 1) (the official TRADES and `part_trades_loss` always do), then sign
    steps on the summed KL divergence KL(f(x) || f(x_adv)) (nn.KLDivLoss(log f(x_adv), f(x))),
    projected onto +-epsilon and clipped to [0, 1] (a float budget with the official trades_loss's
    min/max expression, a map with element_wise_clamp's: attacks.common.minmax_projection). Eval mode.

    The clean softmax is computed once: with the model in eval mode it is the same at every step
    (the official code recomputes it each step; tests/method/test_losses.py shows the result is identical).
    `y` is unused; it keeps the common attack signature.
    """
    x = x.detach()
    with eval_mode(model):
        with torch.no_grad():
            target = F.softmax(model(x), dim=1)
        x_adv = start(x, epsilon if start_epsilon is None else start_epsilon)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.kl_div(F.log_softmax(model(x_adv), dim=1), target, reduction="sum")
            x_adv = sign_step(x_adv, x, loss, step_size, epsilon, project)
    return x_adv.detach()


def trades_objective_logits(logits: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float,
                            logits_target: torch.Tensor | None = None) -> torch.Tensor:
    """CE(f(x), y) + beta * KL(f(x) || f(x_adv)) / batch, the KL as nn.KLDivLoss(log f(x_adv), f(x)).
    `logits_target` (default `logits`) is the clean forward the KL target comes from. Tested against an
    independent re-derivation in tests/method/test_losses.py."""
    target = F.softmax(logits if logits_target is None else logits_target, dim=1)
    loss_robust = F.kl_div(F.log_softmax(logits_adv, dim=1), target, reduction="sum") / len(y)
    return F.cross_entropy(logits, y) + beta * loss_robust


def trades_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                     beta: float) -> torch.Tensor:
    """TRADES / PART-T (`part_trades_loss`): forwards x, x_adv, x as upstream (BatchNorm statistics)."""
    logits = model(x)
    logits_adv = model(x_adv)
    return trades_objective_logits(logits, logits_adv, y, beta, logits_target=model(x))
