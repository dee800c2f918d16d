"""Training losses. Each takes the budget `eps` (a float for the base method, PART's per-pixel map
otherwise), builds its adversarial examples with the model in eval mode, and returns the loss with
the model back in train mode. Switching a float budget for a map is the whole of PART."""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks import TRAIN_ATTACKS, pgd, trades
from attacks.common import Budget


def at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget,
            args: argparse.Namespace, start_epsilon: Budget | None) -> torch.Tensor:
    """PGD-AT (Madry et al.), or MMA-AT with --attack mma: cross-entropy on the attacked batch."""
    model.eval()
    x_adv = TRAIN_ATTACKS[args.attack](model, x, y, eps, args.step_size, args.num_steps,
                                       random_start=args.rand_init, start_epsilon=start_epsilon)
    model.train()
    return F.cross_entropy(model(x_adv), y)


def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget,
                args: argparse.Namespace, start_epsilon: Budget | None) -> torch.Tensor:
    """TRADES / PART-T (`part_trades_loss`): CE(f(x), y) + beta * KL(f(x_adv) || f(x)) / batch.

    The forward passes keep the official order (x, x_adv, x) so BatchNorm statistics match."""
    model.eval()
    x_adv = trades(model, x, y, eps, args.step_size, args.num_steps, random_start=args.rand_init)
    model.train()
    loss_natural = F.cross_entropy(model(x), y)
    log_adv = F.log_softmax(model(x_adv), dim=1)
    loss_robust = F.kl_div(log_adv, F.softmax(model(x), dim=1), reduction="sum") / len(x)
    return loss_natural + args.beta * loss_robust


def mart_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget,
              args: argparse.Namespace, start_epsilon: Budget | None) -> torch.Tensor:
    """MART / PART-M (`part_mart_loss`): boosted CE on x_adv + beta * KL weighted by 1 - p_y(x)."""
    model.eval()
    x_adv = pgd(model, x, y, eps, args.step_size, args.num_steps, random_start=args.rand_init, start="normal")
    model.train()
    logits = model(x)
    logits_adv = model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    top2 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = nat_probs.gather(1, y[:, None]).squeeze(1)
    kl = F.kl_div(torch.log(adv_probs + 1e-12), nat_probs, reduction="none").sum(1)
    loss_robust = (kl * (1.0000001 - true_probs)).sum() / len(x)
    return loss_adv + float(args.beta) * loss_robust


LOSSES = {"at": at_loss, "trades": trades_loss, "mart": mart_loss}
