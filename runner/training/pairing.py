"""The official pairing of masks by batch index (--cam-refresh official), upstream's `save_cam`: the masks
come from a separate shuffled pass over the training set and are applied by batch index in the next
pass, so each mask belongs to other images (a fault of the official code, reproduced behind the flag).
The trainer gives train_batch the stored ε map of each batch.

The masks are recomputed in the first PART epoch and then every --save-weights PART epochs, as
upstream; held as booleans, and in checkpoints as bits, so a resume continues with them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from cam.maps import MAPS, importance_map
from cam.rules import apply_rule, budget_from
from part import PartSettings
from part.step import map_noise
from common.rng import Streams


class OfficialPairing:
    """`mask_pass(epoch)` yields the (x, y, extras) batches of the separate pass (its own shuffle and RNG
    stream); a map that draws gets each of its batches' own stream (`streams`' "masks" batch seeds)."""

    def __init__(self, model: nn.Module, s: PartSettings, mask_pass: Callable[[int], Iterable[tuple]],
                 first_epoch: int, every: int, progress: bool = False, streams: Streams | None = None,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.model, self.s, self.streams, self.shard = model, s, streams, shard      # shard: (rank, world)
        self.mask_pass, self.first_epoch, self.every, self.progress = mask_pass, first_epoch, every, progress
        self.masks: list[torch.Tensor] | None = None

    def kept(self, x: torch.Tensor, y: torch.Tensor, extras: dict | None = None, map_seed: int = 0) -> torch.Tensor:
        """The rule's (B, 3, H, W) bool map of the elements that keep epsilon, for the batch x."""
        noise = map_noise(x, map_seed) if MAPS[self.s.cam].draws else None
        return apply_rule(self.s, importance_map(self.s.cam, self.model, x, y, extras, noise), x)

    def begin_epoch(self, epoch: int) -> None:
        k = epoch - self.first_epoch + 1          # PART epoch 1, 2, ...
        if self.masks is None or k == 1 or k % self.every == 0:
            rank, world = self.shard
            seed = (lambda i: self.streams.batch_seed("masks", epoch, i * world + rank)) if self.streams else (lambda i: 0)
            self.masks = [self.kept(*batch, map_seed=seed(i)) for i, batch in enumerate(
                tqdm(self.mask_pass(epoch), desc=f"epoch {epoch} masks", disable=not self.progress, leave=False))]

    def epsilon(self, batch_idx: int) -> torch.Tensor:
        """The ε map of training batch `batch_idx`: the pass's mask of that index."""
        return budget_from(self.masks[batch_idx], self.s.epsilon, self.s.low_epsilon)

    def state(self) -> dict | None:
        return None if self.masks is None else pack_masks(self.masks)

    def load_state(self, state: dict | None) -> None:
        device = next(self.model.parameters()).device
        self.masks = None if state is None else unpack_masks(state, device)


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
