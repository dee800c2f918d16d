"""Pieces every attack shares: the budget type, the random starts and the projections, each a function
an attack takes as an argument (`start=`, `project=`), and the signed-gradient step."""
from __future__ import annotations

from typing import Callable, Union

import torch

Budget = Union[float, torch.Tensor]


# --- the random starts: start(x, radius, noise) -> the attack's first point --------------------------
# `radius` is read by the uniform starts only; `noise`: U[0, 1) values of x's shape to use instead of
# drawing them from the global RNG (the evaluation's per-image streams, common.rng.image_uniform).

def uniform_start(x: torch.Tensor, radius: Budget, noise: torch.Tensor | None = None) -> torch.Tensor:
    """x + U(-r, r), not clipped before the first step (the official `part_pgd`)."""
    # (2U - 1) * r with U ~ U[0, 1): the same bits whether r is a float or a tensor of that float,
    # which keeps PART with epsilon_low == epsilon identical to plain AT.
    return x + ((torch.rand_like(x) if noise is None else noise) * 2 - 1) * radius


def uniform_clipped_start(x: torch.Tensor, radius: Budget, noise: torch.Tensor | None = None) -> torch.Tensor:
    """x + U(-r, r) clipped to [0, 1] (torchattacks' PGD, the Madry start of MMA)."""
    return uniform_start(x, radius, noise).clamp(0.0, 1.0)


def normal_start(x: torch.Tensor, radius: Budget = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """x + 0.001 * N(0, 1), not clipped (TRADES, MART: at x itself the TRADES KL gradient is zero)."""
    return x + 0.001 * torch.randn_like(x)


def no_start(x: torch.Tensor, radius: Budget = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """x itself (--rand_init false)."""
    return x


Start = Callable[..., torch.Tensor]


# --- the projections: project(x_adv, x, epsilon) -> onto |x_adv - x| <= epsilon, then onto [0, 1] ------
# Equal in exact arithmetic; in floating point they round x - eps and x + eps differently (1 ulp where x
# is small), which flips near-zero gradient signs in later steps, so each attack uses the expression of
# the official code it reproduces. A map budget (a tensor) always takes the official
# `element_wise_clamp` (clamp_projection's tensor branch), which every map budget goes through upstream
# (part_pgd, part_mma, part_trades_loss, part_mart_loss).

def clamp_projection(x_adv: torch.Tensor, x: torch.Tensor, epsilon: Budget) -> torch.Tensor:
    """x + clamp(x_adv - x, -eps, eps): torchattacks' PGD (AT warm-up, baseline, PGD-20); a map budget
    (a tensor) as the official element_wise_clamp, in every attack."""
    if torch.is_tensor(epsilon):
        delta = torch.maximum(torch.minimum(x_adv - x, epsilon), -epsilon)
        return torch.clamp(x + delta, 0.0, 1.0)
    return torch.clamp(x + torch.clamp(x_adv - x, -epsilon, epsilon), 0.0, 1.0)


def minmax_projection(x_adv: torch.Tensor, x: torch.Tensor, epsilon: Budget) -> torch.Tensor:
    """min(max(x_adv, x - eps), x + eps): a float budget in the official trades_loss, mart_loss and mma
    (TRADES / MART / MMA warm-ups and baselines, the MMA evaluation); a map budget as clamp_projection's."""
    if torch.is_tensor(epsilon):
        return clamp_projection(x_adv, x, epsilon)
    return torch.clamp(torch.min(torch.max(x_adv, x - epsilon), x + epsilon), 0.0, 1.0)


Projection = Callable[[torch.Tensor, torch.Tensor, Budget], torch.Tensor]


def sign_step(x_adv: torch.Tensor, x: torch.Tensor, loss: torch.Tensor, step_size: float,
              epsilon: Budget, project: Projection = clamp_projection) -> torch.Tensor:
    """One ascent step on `loss` (a scalar computed from x_adv): sign of the input gradient, then the
    projection. Gradients are taken with respect to the input only, never the weights."""
    grad, = torch.autograd.grad(loss, x_adv)
    return project(x_adv.detach() + step_size * grad.sign(), x, epsilon)


def repeat_budget(epsilon: Budget, batch: int, k: int) -> Budget:
    """Tile a per-example budget (B, ...) to k stacked copies of the batch (k*B, ...)."""
    if torch.is_tensor(epsilon) and epsilon.dim() > 0 and epsilon.shape[0] == batch and k > 1:
        return epsilon.repeat(k, *([1] * (epsilon.dim() - 1)))
    return epsilon
