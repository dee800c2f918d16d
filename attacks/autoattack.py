"""AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square) through torchattacks, as the official code."""
from __future__ import annotations

import torch
import torch.nn as nn


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
               num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """Standard L-inf AutoAttack with a fixed seed; returns the adversarial images. torchattacks is
    imported here, at the first call: its import loads scipy.stats (about a second) that no other
    evaluation needs."""
    import torchattacks
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=float(epsilon), version="standard",
                                     n_classes=num_classes, seed=seed)
    return attack(x, y).detach()
