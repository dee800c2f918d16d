"""Training losses. Each takes the budget `eps` (a float for the base method, PART's per-pixel map
otherwise), builds its adversarial examples with the model in eval mode, and returns the loss with
the model back in train mode. Switching a float budget for a map is the whole of PART."""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks import TRAIN_ATTACKS
from attacks.common import Budget


def at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget,
            args: argparse.Namespace, start_epsilon: Budget | None) -> torch.Tensor:
    """PGD-AT (Madry et al.), or MMA-AT with --attack mma: cross-entropy on the attacked batch."""
    model.eval()
    x_adv = TRAIN_ATTACKS[args.attack](model, x, y, eps, args.step_size, args.num_steps,
                                       start_epsilon=start_epsilon)
    model.train()
    return F.cross_entropy(model(x_adv), y)


LOSSES = {"at": at_loss}
