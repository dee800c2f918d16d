"""The training step: attack -> objective -> backward -> optimizer step. Wrappers compose around it
(utils.awp.AWPStep perturbs the weights between the attack and the update)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from attacks.common import Budget
from utils.losses import TrainingLoss


@dataclass
class TrainStep:
    loss: TrainingLoss                  # the phase's attack and objective
    optimizer: torch.optim.Optimizer

    def begin_epoch(self, epoch: int) -> None:
        """Called before each epoch (a wrapper may switch itself on at an epoch)."""

    def adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget) -> torch.Tensor:
        return self.loss.attack(model, x, y, eps)

    def update(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The objective on (x, x_adv), its backward and one optimizer step; returns the loss."""
        loss = self.loss.objective(model, x, x_adv, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget,
                 step_model: nn.Module | None = None) -> torch.Tensor:
        """One step on the batch. The attack runs on `model`; the objective through `step_model` (the
        DistributedDataParallel wrapper under torchrun, which all-reduces the gradients) when given."""
        return self.update(step_model or model, x, self.adversarial(model, x, y, eps), y)
