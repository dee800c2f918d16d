"""MART (Wang et al. 2020) and PART-M: the objective. Its inner maximisation is cross-entropy PGD
(attacks.pgd) from x + 0.001 N(0, 1) with the official mart_loss's min/max projection of a float budget."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def mart_objective_logits(logits: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                          beta: float) -> torch.Tensor:
    """MART: BCE(f(x_adv), y) + beta * mean_i KL(f(x_i) || f(x_adv_i)) * (1 - f(x_i)_y). Tested against an
    independent re-derivation in tests/method/test_losses.py."""
    adv_probs = F.softmax(logits_adv, dim=1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    loss_robust = (kl * (1.0000001 - true_probs)).sum() / len(y)
    return loss_adv + float(beta) * loss_robust


def mart_objective(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                   beta: float) -> torch.Tensor:
    """MART / PART-M (`part_mart_loss`): forwards x, then x_adv, as upstream."""
    logits = model(x)
    return mart_objective_logits(logits, model(x_adv), y, beta)
