"""Pieces every attack shares: the budget type, the random start and the projection."""
from __future__ import annotations

from typing import Union

import torch

Budget = Union[float, torch.Tensor]

# How an attack starts:
#   uniform          x + U(-r, r), not clipped before the first step (the official `part_pgd`)
#   uniform_clipped  x + U(-r, r) clipped to [0, 1] (torchattacks' PGD, the Madry start of MMA)
#   normal           x + 0.001 * N(0, 1), not clipped (TRADES, MART)
#   none             x itself
STARTS = ("uniform", "uniform_clipped", "normal", "none")


def random_start_point(x: torch.Tensor, radius: Budget, kind: str = "uniform",
                       noise: torch.Tensor | None = None) -> torch.Tensor:
    """The starting point of an attack; `radius` is used by the uniform starts only. `noise`: U[0, 1)
    values of x's shape to use instead of drawing them from the global RNG (the evaluation's per-image
    streams, utils.infra.rng.image_uniform)."""
    if kind == "none":
        return x
    if kind == "normal":
        return x + 0.001 * torch.randn_like(x)
    if kind not in ("uniform", "uniform_clipped"):
        raise ValueError(f"unknown attack start {kind!r}; choose from {', '.join(STARTS)}")
    # (2U - 1) * r with U ~ U[0, 1): the same bits whether r is a float or a tensor of that float,
    # which keeps PART with epsilon_low == epsilon identical to plain AT.
    start = x + ((torch.rand_like(x) if noise is None else noise) * 2 - 1) * radius
    return start.clamp(0.0, 1.0) if kind == "uniform_clipped" else start


# How an attack projects onto the budget around x, as the official code writes it in each place.
# Equal in exact arithmetic; in floating point they round x - eps and x + eps differently (1 ulp
# where x is small), which flips near-zero gradient signs in later steps, so each attack uses the
# expression of the official code it reproduces:
#   clamp    x + clamp(x_adv - x, -eps, eps)     torchattacks' PGD (AT warm-up, baseline, PGD-20) and
#                                                element_wise_clamp, which every map budget goes through
#                                                (part_pgd, part_mma, part_trades_loss, part_mart_loss)
#   minmax   min(max(x_adv, x - eps), x + eps)   a float budget in the official trades_loss, mart_loss
#                                                and mma (TRADES / MART / MMA warm-ups and baselines,
#                                                the MMA evaluation)
PROJECTIONS = ("clamp", "minmax")


def project(x_adv: torch.Tensor, x: torch.Tensor, epsilon: Budget, form: str = "clamp") -> torch.Tensor:
    """Project x_adv onto |x_adv - x| <= epsilon (element-wise), then the image onto [0, 1]. A map
    budget always takes the element-wise clamp; `form` chooses the expression for a float budget."""
    if torch.is_tensor(epsilon):
        delta = torch.maximum(torch.minimum(x_adv - x, epsilon), -epsilon)
        return torch.clamp(x + delta, 0.0, 1.0)
    if form == "minmax":
        return torch.clamp(torch.min(torch.max(x_adv, x - epsilon), x + epsilon), 0.0, 1.0)
    if form != "clamp":
        raise ValueError(f"unknown projection {form!r}; choose from {', '.join(PROJECTIONS)}")
    return torch.clamp(x + torch.clamp(x_adv - x, -epsilon, epsilon), 0.0, 1.0)


def sign_step(x_adv: torch.Tensor, x: torch.Tensor, loss: torch.Tensor, step_size: float,
              epsilon: Budget, projection: str = "clamp") -> torch.Tensor:
    """One ascent step on `loss` (a scalar computed from x_adv): sign of the input gradient, then the
    projection. Gradients are taken with respect to the input only, never the weights."""
    grad, = torch.autograd.grad(loss, x_adv)
    return project(x_adv.detach() + step_size * grad.sign(), x, epsilon, projection)


def repeat_budget(epsilon: Budget, batch: int, k: int) -> Budget:
    """Tile a per-example budget (B, ...) to k stacked copies of the batch (k*B, ...)."""
    if torch.is_tensor(epsilon) and epsilon.dim() > 0 and epsilon.shape[0] == batch and k > 1:
        return epsilon.repeat(k, *([1] * (epsilon.dim() - 1)))
    return epsilon
