"""What a run shows besides training, each pass on its own seeded stream (utils.rng.Streams), so
that switching one on changes no trained weight (tested): natural and PGD-20 accuracy on
--eval-subset fixed test images every --eval-every epochs (the learning curves), and the mask grids
of --save-masks fixed test images after the warm-up and at the end."""
from __future__ import annotations

from pathlib import Path

import torch

from cam import compute_cam
from utils.budgets import BatchCamBudget
from utils.data import ArraySplit, Split, make_loader
from utils.evaluate import evaluate
from utils.visualize import grid_panels, save_mask_grid


class SideOutputs:
    def __init__(self, trainer, test_split: Split) -> None:
        """`trainer`: the utils.train.Trainer whose model, phases and streams are shown."""
        a = trainer.args
        self.trainer = trainer
        self.eval_loader = None if not a.eval_every else make_loader(
            ArraySplit(test_split.subset(a.eval_subset)), a.batch_size, None, a.workers)
        self.grid_images: tuple[torch.Tensor, torch.Tensor] | None = None
        if a.save_masks:
            few = ArraySplit(test_split.subset(a.save_masks))
            self.grid_images = (few.images.float() / 255, few.labels)

    def periodic_eval(self, epoch: int, row: dict) -> None:
        """Adds natural and PGD-20 accuracy to the epoch's log row every --eval-every epochs and at the end."""
        t, a = self.trainer, self.trainer.args
        if self.eval_loader is None or (epoch % a.eval_every and epoch != a.epochs):
            return
        with t.streams.fork("eval", epoch):
            ev = evaluate(t.model, self.eval_loader, ["natural", "pgd20"], a, t.num_classes, verbose=False,
                          dist=t.dist)
        row["natural"], row["pgd20"] = ev["natural"], ev["pgd20"]

    def mask_grid(self, epoch: int, path: Path) -> None:
        """The budget PART gives N fixed test images under the current model, and the perturbation of
        the attack the method trains with after the warm-up (PGD, MMA, or the TRADES KL attack)."""
        t, a = self.trainer, self.trainer.args
        x, y = (v.to(t.device) for v in self.grid_images)
        with t.streams.fork("grid", epoch):
            if not isinstance(t.grid_budget, BatchCamBudget):      # a CAM-free rule
                cam = None
                eps = t.grid_budget(0, x).expand(len(x), -1, -1, -1)
            else:
                cam = compute_cam(t.model, x, a.cam)
                eps = t.grid_budget.from_cam(cam)
            x_adv = t.main_phase.attack(t.train_model, x, y, eps)
        panels = grid_panels(x.cpu(), None if cam is None else cam.cpu(), eps.cpu(), (x_adv - x).cpu())
        label = t.method.label(a.no_reweight, a.mask_rule)
        save_mask_grid(panels, path, title=f"{label}, epoch {epoch}, rule {a.mask_rule}")
