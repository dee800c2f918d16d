"""AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square) as its authors implement it: fra31/auto-attack,
on the package index as `pyautoattack`, the evaluator of RobustBench. The official PART evaluation
uses torchattacks' re-implementation (attacks/autoattack.py); published models are compared with
this one."""
from __future__ import annotations

import pyautoattack
import torch
import torch.nn as nn

VERSION = pyautoattack.__version__


def autoattack_standard(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                        num_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """Standard L-inf AutoAttack with a fixed seed on the images' device; returns the adversarial images.
    The targeted attacks use the standard 9 target classes (fewer when the data have fewer)."""
    attack = pyautoattack.AutoAttack(model, norm="Linf", eps=float(epsilon), version="standard", seed=seed,
                                     device=x.device)
    attack.apgd_targeted.n_target_classes = attack.fab.n_target_classes = min(9, num_classes - 1)
    x_adv, _ = attack.run_standard_evaluation(x.contiguous(), y, batch_size=len(x))   # it .view()s its input
    return x_adv.detach()
