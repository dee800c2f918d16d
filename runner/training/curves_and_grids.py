"""What a run shows besides training, each pass on its own seeded stream (common.rng.Streams), so
that switching one on changes no trained weight (tested): natural and PGD-20 accuracy on
--eval-subset fixed test images every --eval-every epochs (the learning curves), and the mask grids
of --save-masks fixed test images after the warm-up and at the end."""
from __future__ import annotations

from pathlib import Path

import torch

from cam.maps import MAPS, importance_map
from cam.rules import RULES, epsilon_map
from runner.data.loaders import ArraySplit, make_loader, on_device
from runner.data.split import Split
from runner.evaluation import EvalSettings
from runner.evaluation.evaluate import evaluate
from runner.evaluation.visualize import grid_panels, save_mask_grid
from runner.infra.distributed import Dist
from common.rng import Streams


class CurvesAndGrids:
    def __init__(self, s: EvalSettings, test_split: Split, model: torch.nn.Module, attack_model: torch.nn.Module,
                 streams: Streams, dist: Dist, every: int = 0, subset: int = 1000, grid: int = 0, epochs: int = 1,
                 batch_size: int = 128, workers: int = 0) -> None:
        """`s`: what the learning curves' evaluation reads; `model`: the one trained (`attack_model`: it under
        --precision, what the training attack sees); `streams`: the run's random streams, of which each pass
        forks its own; `every`, `subset`: --eval-every, --eval-subset; `grid`: --save-masks; `epochs`:
        the run's last epoch (the curves end there)."""
        self.s, self.model, self.attack_model, self.streams, self.dist = s, model, attack_model, streams, dist
        self.every, self.epochs = every, epochs
        self.num_classes = len(test_split.classes)
        self.eval_loader = None if not every else make_loader(
            ArraySplit(test_split.subset(subset)), batch_size, None, workers)
        self.grid_images: tuple | None = None     # (x, y, extras) of the grid's images
        if grid:
            few = ArraySplit(test_split.subset(grid))
            self.grid_images = (few.images.float() / 255, few.labels, few.extras)

    def periodic_eval(self, epoch: int, row: dict) -> None:
        """Adds natural and PGD-20 accuracy to the epoch's log row every --eval-every epochs and at the end."""
        if self.eval_loader is None or (epoch % self.every and epoch != self.epochs):
            return
        with self.streams.fork("eval", epoch):
            ev = evaluate(self.model, self.eval_loader, ["natural", "pgd20"], self.s, self.num_classes, verbose=False,
                          dist=self.dist)
        row["natural"], row["pgd20"] = ev["natural"], ev["pgd20"]

    def mask_grid(self, epoch: int, path: Path, s, attack, label: str) -> None:
        """The ε map PART gives N fixed test images under the current model (`s`: the method's settings,
        PART's map and rule, for a grid even of a baseline), and the perturbation of `attack`, the one the
        method trains with after the warm-up (PGD, MMA, or the TRADES KL attack)."""
        x, y, extras = on_device(self.grid_images, next(self.model.parameters()).device)
        with self.streams.fork("grid", epoch):
            noise = torch.rand(x.shape[0], *x.shape[-2:], device=x.device) if MAPS[s.cam].draws else None
            cam = importance_map(s.cam, self.model, x, y, extras, noise) if RULES[s.mask_rule].reads_map else None
            eps = epsilon_map(s, cam, x).expand(len(x), -1, -1, -1)
            x_adv = attack(self.attack_model, x, y, eps)
        panels = grid_panels(x.cpu(), None if cam is None else cam.cpu(), eps.cpu(), (x_adv - x).cpu())
        where = f"map {s.cam}, " if RULES[s.mask_rule].reads_map else ""
        save_mask_grid(panels, path, title=f"{label}, epoch {epoch}, {where}rule {s.mask_rule}")
