"""Adversarial Weight Perturbation (Wu, Xia and Wang, NeurIPS 2020; reference code csdongxian/AWP),
the context part.step.train_batch runs the update in, given by the trainer, for every method and phase: `--awp-gamma G
--awp-warmup E`.

Per batch, after the adversarial examples are made on the unperturbed model:
  1. a proxy copy of the model (its weights and BatchNorm buffers loaded from the model, train mode)
     takes one plain SGD step (lr = --lr) that *increases* the method's own training objective;
  2. for every weight tensor with more than one dimension, the difference proxy - model is rescaled
     to G * ||w|| / ||difference|| (biases and BatchNorm parameters are not perturbed);
  3. the model is perturbed by it, the step's objective is computed, back-propagated and the
     optimizer steps, and the perturbation is removed.
The proxy's BatchNorm statistics are its own (reloaded from the model each batch): the model's are
untouched by it. Nothing persists between batches, so a resumed run continues bit for bit. From epoch
E on (1-based; 0 or 1: from the start); with G = 0 the step is not wrapped at all.
Under torchrun the proxy's gradients are averaged over the processes, as the model's are.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn as nn

from models.zoo import Autocast
from runner.infra.distributed import Dist

EPS = 1e-20      # as the reference: a zero difference stays zero


class AWP:
    """`around(x, x_adv, y)`: the context the update of a batch runs in (the model perturbed inside it)."""

    def __init__(self, model: nn.Module, objective: Callable, gamma: float, start_epoch: int, lr: float,
                 bf16: bool = False, dist: Dist = Dist()) -> None:
        self.model, self.objective, self.gamma, self.start_epoch, self.dist = model, objective, gamma, start_epoch, dist
        self.proxy = copy.deepcopy(model)
        self.proxy_model = Autocast(self.proxy) if bf16 else self.proxy
        self.proxy_optimizer = torch.optim.SGD(self.proxy.parameters(), lr=lr)
        self.active = False

    def begin_epoch(self, epoch: int) -> None:
        self.active = epoch >= self.start_epoch

    def perturbation(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """{parameter name: G-free direction ||w|| / ||d|| * d} from one ascent step of the proxy."""
        self.proxy.load_state_dict(self.model.state_dict())
        self.proxy.train()
        loss = -self.objective(self.proxy_model, x, x_adv, y)
        self.proxy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.parallel:
            grads = [p.grad for p in self.proxy.parameters() if p.grad is not None]
            self.dist.sum_(*grads)
            for g in grads:
                g.div_(self.dist.world)
        self.proxy_optimizer.step()
        old, new = self.model.state_dict(), self.proxy.state_dict()
        diff = {}
        for k, w in old.items():
            if "weight" in k and w.dim() > 1:
                d = new[k] - w
                diff[k] = w.norm() / (d.norm() + EPS) * d
        return diff

    def _add(self, diff: dict[str, torch.Tensor], coeff: float) -> None:
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in diff:
                    p.add_(coeff * diff[name])

    @contextlib.contextmanager
    def around(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> Iterator[None]:
        if not self.active:
            yield
            return
        diff = self.perturbation(x, x_adv, y)
        self._add(diff, self.gamma)
        yield
        self._add(diff, -self.gamma)
