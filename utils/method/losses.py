"""The two halves of a training loss: the attack (the inner maximisation, model in eval mode) with its
hyper-parameters fixed, and the objectives (the outer minimisation, model in the caller's mode:
train). The budget `eps` is a float for the base method and PART's per-pixel map otherwise; switching
one for the other is the whole of PART. utils/method/recipe.py's train_batch puts them together."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.common import Budget
from models.zoo import eval_mode

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Attack:
    """An attack of the common signature with its hyper-parameters fixed: attack(model, x, y, eps).
    It owns the model's mode, as torchattacks' attacks do: eval mode while it runs (BatchNorm
    statistics untouched), the caller's mode restored afterwards."""
    fn: Callable[..., torch.Tensor]
    step_size: float
    steps: int
    start: str
    start_epsilon: Budget | None = None
    projection: str | None = None      # attacks.common.PROJECTIONS; None: the attack's own default

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget) -> torch.Tensor:
        extra = {} if self.projection is None else {"projection": self.projection}
        with eval_mode(model):
            return self.fn(model, x, y, eps, self.step_size, self.steps, start=self.start,
                           start_epsilon=self.start_epsilon, **extra)


# --- objectives on logits (tested against an independent re-derivation in tests/test_losses.py) ---

def trades_objective_logits(logits: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float,
                            logits_target: torch.Tensor | None = None) -> torch.Tensor:
    """CE(f(x), y) + beta * KL(f(x) || f(x_adv)) / batch, the KL as nn.KLDivLoss(log f(x_adv), f(x)).
    `logits_target` (default `logits`) is the clean forward the KL target comes from."""
    target = F.softmax(logits if logits_target is None else logits_target, dim=1)
    loss_robust = F.kl_div(F.log_softmax(logits_adv, dim=1), target, reduction="sum") / len(y)
    return F.cross_entropy(logits, y) + beta * loss_robust


def mart_objective_logits(logits: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                          beta: float) -> torch.Tensor:
    """MART: BCE(f(x_adv), y) + beta * mean_i KL(f(x_i) || f(x_adv_i)) * (1 - f(x_i)_y)."""
    adv_probs = F.softmax(logits_adv, dim=1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    loss_robust = (kl * (1.0000001 - true_probs)).sum() / len(y)
    return loss_adv + float(beta) * loss_robust


# --- objectives on the model (the forward passes in the official order, for BatchNorm) -----------

def at_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PGD-AT (Madry et al.) and MMA-AT: cross-entropy on the attacked batch."""
    return F.cross_entropy(model(x_adv), y)


def trades_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                     beta: float) -> torch.Tensor:
    """TRADES / PART-T (`part_trades_loss`): forwards x, x_adv, x as upstream (BatchNorm statistics)."""
    logits = model(x)
    logits_adv = model(x_adv)
    return trades_objective_logits(logits, logits_adv, y, beta, logits_target=model(x))


def mart_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                   beta: float) -> torch.Tensor:
    """MART / PART-M (`part_mart_loss`): forwards x, then x_adv, as upstream."""
    logits = model(x)
    return mart_objective_logits(logits, model(x_adv), y, beta)
