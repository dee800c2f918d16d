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

import torch
import torch.nn as nn
from tqdm import tqdm

from attacks.common import Budget
from cam import compute_cam, region_map
from cam.masks import budget_from, important_map
from utils.checkpoint import pack_masks, unpack_masks


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
    """`rule`: a CAM rule of utils.rules.RULES; `params`: its own flags' values (utils.rules.rule_params)."""

    def __init__(self, model: nn.Module, cam: str, rule: str, size: int, epsilon: float,
                 low_epsilon: float, params: dict | None = None) -> None:
        self.model, self.cam, self.rule, self.size = model, cam, rule, size
        self.epsilon, self.low_epsilon, self.params = epsilon, low_epsilon, params or {}

    def important(self, x: torch.Tensor) -> torch.Tensor:
        return important_map(compute_cam(self.model, x, self.cam), self.size, self.rule, **self.params)

    def from_cam(self, cam: torch.Tensor) -> torch.Tensor:
        """The budget of an already computed CAM (the mask grids show the CAM too)."""
        return budget_from(important_map(cam, self.size, self.rule, **self.params), self.epsilon, self.low_epsilon)

    def __call__(self, batch_idx: int, x: torch.Tensor) -> torch.Tensor:
        return budget_from(self.important(x), self.epsilon, self.low_epsilon)


class PairedCamBudget(BatchCamBudget):
    """`mask_pass(epoch)` yields the batches of the separate pass (its own shuffle and RNG stream);
    masks are recomputed in the first PART epoch and then every `every` PART epochs, as upstream's
    `--save-weights`. The masks held go into checkpoints (as bits), so a resume continues with them."""

    def __init__(self, model: nn.Module, cam: str, rule: str, size: int, epsilon: float, low_epsilon: float,
                 mask_pass: Callable[[int], Iterable[torch.Tensor]], first_epoch: int, every: int,
                 progress: bool = False, params: dict | None = None) -> None:
        super().__init__(model, cam, rule, size, epsilon, low_epsilon, params)
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


# --- The CAM-free rules' builders (utils.rules.RULES names them: region, random) ------------------
# Each builds (the policy, the random start's span: None for the map itself, whether the log tracks
# the full-budget share) from the arguments.

def region_budget(args, image_size: int, device: torch.device) -> tuple[BudgetPolicy, float | None, bool]:
    # Figure 1: fixed per-quadrant budgets; the random start spans the region map itself (--region-start
    # map, the default) or +-epsilon (--region-start epsilon: PART's part_pgd start, as the random rule).
    start = None if getattr(args, "region_start", "map") == "map" else args.epsilon
    return FixedBudget(region_map(image_size, args.region_eps, args.epsilon, device)), start, False


def random_budget(args, image_size: int, device: torch.device) -> tuple[BudgetPolicy, float | None, bool]:
    # The placement control: PART's share of full-budget elements, placed at random; the start in
    # +-epsilon, as PART's part_pgd.
    return RandomBudget(args.random_share, args.epsilon, args.low_epsilon), args.epsilon, True

