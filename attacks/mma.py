"""MMA: a targeted margin attack on the k most likely wrong classes, keeping the strongest (Madry start).

As the official `mma` (and `part_mma` when epsilon is a map): one random start in +-epsilon,
clipped to [0, 1]; for each of the k classes with the largest clean logits other than the true
one, `steps` sign-gradient steps on -max(z_y - z_t + confidence, 0); at the end, per example, the
adversarial image with the largest margin z_t - z_y. All k runs go through the model as one batch.
A float budget is projected with the official mma's min/max expression, a map with part_mma's
element_wise_clamp (attacks.common.minmax_projection).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from attacks.common import Budget, Projection, Start, minmax_projection, repeat_budget, sign_step, uniform_clipped_start
from models.zoo import eval_mode


def mma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: Budget, step_size: float,
        steps: int, start: Start = uniform_clipped_start, start_epsilon: Budget | None = None,
        k: int = 3, confidence: float = 50.0, project: Projection = minmax_projection,
        start_noise: torch.Tensor | None = None) -> torch.Tensor:
    x = x.detach()
    b = x.shape[0]
    with eval_mode(model):
        with torch.no_grad():
            logits = model(x)
        k = min(k, logits.shape[1] - 1)
        wrong = logits.scatter(1, y[:, None], float("-inf"))
        targets = wrong.topk(k, dim=1).indices.t().reshape(-1)        # (k*B,), target-major
        begin = start(x, epsilon if start_epsilon is None else start_epsilon, start_noise)
        xs = x.repeat(k, 1, 1, 1)
        ys = y.repeat(k)
        eps = repeat_budget(epsilon, b, k)
        x_adv = begin.repeat(k, 1, 1, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            out = model(x_adv)
            real = out.gather(1, ys[:, None]).squeeze(1)
            other = out.gather(1, targets[:, None]).squeeze(1)
            x_adv = sign_step(x_adv, xs, -torch.clamp(real - other + confidence, min=0).sum(), step_size, eps,
                              project)
        with torch.no_grad():
            out = model(x_adv)
            margin = out.gather(1, targets[:, None]) - out.gather(1, ys[:, None])
            best = margin.view(k, b).argmax(0)
    return x_adv.view(k, b, *x.shape[1:])[best, torch.arange(b, device=x.device)].detach()
