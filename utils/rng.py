"""Every random stream of a run and every seed constant, with the reason for each.

- The training pass (shuffle order, augmentation, attack noise) runs on the global RNG, seeded once
  with --seed (set_seed); under torchrun rank r adds r * RANK_SEED_STRIDE.
- Each side pass (the official pairing's mask pass, the periodic evaluation, the mask grids) runs on
  its own seeded fork (Streams.fork), so adding or removing one never changes what training sees.
- Batch i of an attack evaluation runs on EVAL_BATCH_SEEDS[name] + i, the same for every run, so an
  accuracy depends only on the weights and the test images, and an interrupted evaluation continues.
"""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

# Rank r > 0 seeds its training stream with seed + r * RANK_SEED_STRIDE (rank 0: the seed itself), so
# that ranks draw independent augmentation and attack noise; a prime, so that no two (seed, rank)
# pairs of small seeds collide.
RANK_SEED_STRIDE = 7_919
# A side stream's seed: seed * STREAM_STRIDE + STREAM_OFFSETS[kind] + epoch. The stride (a prime
# above 100,000) keeps the streams of different --seed values apart for any epoch count below the
# smallest offset gap (20,000 epochs); the offsets keep the kinds apart.
STREAM_STRIDE = 100_003
STREAM_OFFSETS = {"shuffle": 0, "masks": 50_021, "eval": 70_001, "grid": 90_001}
# Seed of batch i of an evaluation: EVAL_BATCH_SEEDS[name] + i, the same for every run; a million
# apart, so no test set has enough batches for two attacks to share a seed.
EVAL_BATCH_SEEDS = {"pgd20": 1_000_000, "mma": 2_000_000, "aa": 3_000_000, "aa-standard": 4_000_000,
                    "cam-info": 5_000_000}


def set_seed(seed: int) -> None:
    """The training stream: Python's, NumPy's and torch's RNGs (every CUDA device's too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run the block with the CPU RNG (and `device`'s, if CUDA) seeded to `seed`; restore them after."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


class Streams:
    """The seeds of one run's streams (the shuffle of an epoch, and the side passes' forks)."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed_value, self.device = seed, device

    def seed(self, kind: str, epoch: int) -> int:
        return self.seed_value * STREAM_STRIDE + STREAM_OFFSETS[kind] + epoch

    def fork(self, kind: str, epoch: int):
        """Run a side pass on its own seeded RNG and restore the training RNG afterwards."""
        return seeded(self.seed(kind, epoch), self.device)
