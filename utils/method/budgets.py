"""Budget policies: what epsilon a training batch is attacked with. One object per phase, asked once
per batch; `begin_epoch` lets the official pairing recompute its masks on upstream's schedule.

  FixedBudget      the float epsilon (warm-up, baselines) or the fixed region map (Figure 1)
  BatchCamBudget   PART: the CAM of the batch itself under the current model -> epsilon map
  PairedCamBudget  upstream's `save_cam`: masks from a separate shuffled pass over the training set,
                   applied by batch index (so each mask belongs to other images); stored as booleans
  RandomBudget     the control of PART's placement: each element keeps epsilon with probability p,
                   drawn per batch from the training stream (no CAM, no image, no model)
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from attacks.common import Budget
from cam.masks import budget_from
from cam.native import compute_cam


class BudgetPolicy:
    """Called once per batch for its budget; `begin_epoch` before each epoch; `state` is what a
    checkpoint must hold to continue exactly (only the official pairing holds anything)."""

    def begin_epoch(self, epoch: int) -> None:
        pass

    def state(self) -> dict | None:
        return None

    def load_state(self, state: dict | None) -> None:
        pass


class FixedBudget(BudgetPolicy):
    def __init__(self, value: Budget) -> None:
        self.value = value

    def __call__(self, batch_idx: int, x: torch.Tensor) -> Budget:
        return self.value


class RandomBudget(BudgetPolicy):
    """Each element of the batch's budget (B, C, H, W) is epsilon with probability `share`, else
    low_epsilon: PART's mean budget without its placement. Drawn from the global (training) RNG, so a
    run is reproducible and resumes bit for bit (the checkpoint holds that RNG's state)."""

    def __init__(self, share: float, epsilon: float, low_epsilon: float) -> None:
        self.share, self.epsilon, self.low_epsilon = share, epsilon, low_epsilon

    def __call__(self, batch_idx: int, x: torch.Tensor) -> torch.Tensor:
        return budget_from(torch.rand(x.shape, device=x.device) < self.share, self.epsilon, self.low_epsilon)


class BatchCamBudget(BudgetPolicy):
    """`rule`: a CAM rule (utils.method.rules.important_map) with its image size and flags bound: CAM
    (B, h, w) -> the (B, 3, size, size) bool map of the elements that keep epsilon."""

    def __init__(self, model: nn.Module, cam: str, rule: Callable[[torch.Tensor], torch.Tensor], epsilon: float,
                 low_epsilon: float) -> None:
        self.model, self.cam, self.rule = model, cam, rule
        self.epsilon, self.low_epsilon = epsilon, low_epsilon

    def important(self, x: torch.Tensor) -> torch.Tensor:
        return self.rule(compute_cam(self.model, x, self.cam))

    def from_cam(self, cam: torch.Tensor) -> torch.Tensor:
        """The budget of an already computed CAM (the mask grids show the CAM too)."""
        return budget_from(self.rule(cam), self.epsilon, self.low_epsilon)

    def __call__(self, batch_idx: int, x: torch.Tensor) -> torch.Tensor:
        return budget_from(self.important(x), self.epsilon, self.low_epsilon)


class PairedCamBudget(BatchCamBudget):
    """`mask_pass(epoch)` yields the batches of the separate pass (its own shuffle and RNG stream);
    masks are recomputed in the first PART epoch and then every `every` PART epochs, as upstream's
    `--save-weights`. The masks held go into checkpoints (as bits), so a resume continues with them."""

    def __init__(self, model: nn.Module, cam: str, rule: Callable[[torch.Tensor], torch.Tensor], epsilon: float,
                 low_epsilon: float, mask_pass: Callable[[int], Iterable[torch.Tensor]], first_epoch: int,
                 every: int, progress: bool = False) -> None:
        super().__init__(model, cam, rule, epsilon, low_epsilon)
        self.mask_pass, self.first_epoch, self.every, self.progress = mask_pass, first_epoch, every, progress
        self.masks: list[torch.Tensor] | None = None

    def begin_epoch(self, epoch: int) -> None:
        k = epoch - self.first_epoch + 1          # PART epoch 1, 2, ...
        if self.masks is None or k == 1 or k % self.every == 0:
            self.masks = [self.important(x) for x in tqdm(self.mask_pass(epoch), desc=f"epoch {epoch} masks",
                                                          disable=not self.progress, leave=False)]

    def state(self) -> dict | None:
        return None if self.masks is None else pack_masks(self.masks)

    def load_state(self, state: dict | None) -> None:
        device = next(self.model.parameters()).device
        self.masks = None if state is None else unpack_masks(state, device)

    def __call__(self, batch_idx: int, x: torch.Tensor) -> torch.Tensor:
        return budget_from(self.masks[batch_idx], self.epsilon, self.low_epsilon)


def pack_masks(masks: list[torch.Tensor]) -> dict:
    """Boolean masks (one per batch) as bits: a CIFAR-10 epoch's masks take 19 MB instead of 154 MB."""
    flat = torch.cat([m.reshape(len(m), -1) for m in masks]).cpu().numpy()
    return {"bits": torch.from_numpy(np.packbits(flat, axis=1)), "sizes": [len(m) for m in masks],
            "shape": list(masks[0].shape[1:])}


def unpack_masks(packed: dict, device: torch.device) -> list[torch.Tensor]:
    shape = packed["shape"]
    n = int(np.prod(shape))
    flat = np.unpackbits(packed["bits"].cpu().numpy(), axis=1, count=n).astype(bool)
    out, start = [], 0
    for size in packed["sizes"]:
        out.append(torch.from_numpy(flat[start:start + size]).reshape(size, *shape).to(device))
        start += size
    return out
