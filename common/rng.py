"""Every random stream of a run and every seed constant, with the reason for each.

- The training pass (shuffle order, augmentation, attack noise) runs on the global RNG, seeded once
  with --seed (set_seed); under torchrun rank r adds r * RANK_SEED_STRIDE.
- Each side pass (the official pairing's mask pass, the periodic evaluation, the mask grids) runs on
  its own seeded fork (Streams.fork), so adding or removing one never changes what training sees.
- An attack evaluation (--eval-seeding image, the default) draws each test image's random start from
  that image's own stream: image_uniform(its index in the test set, EVAL_BATCH_SEEDS[name] + draw), a
  counter-based hash, so an accuracy depends only on the weights and the test images, not on the batch
  size, the torchrun ranks, a resumption or the other images of a --test-subset. --eval-seeding batch
  (every run before it existed; the CPU-scale study keeps it) seeds batch i with EVAL_BATCH_SEEDS[name] + i.
"""
from __future__ import annotations

import contextlib
import math
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
STREAM_OFFSETS = {"shuffle": 0, "maps": 30_011, "masks": 50_021, "eval": 70_001, "grid": 90_001}
# A batch's own seed within an epoch's stream (Streams.batch_seed): (epoch seed * BATCH_STRIDE + batch)
# mod 2**32, a key of the counter-based image_uniform, so a random map's draws depend on the seed, the
# epoch and the batch's index alone (a resume draws them again exactly; the training RNG is untouched).
BATCH_STRIDE = 65_537
# The seed of an evaluation's attack: its per-image streams are keyed by it (--eval-seeding image); under
# --eval-seeding batch, batch i runs on EVAL_BATCH_SEEDS[name] + i, a million apart, so no test set has
# enough batches for two attacks to share a seed.
EVAL_BATCH_SEEDS = {"pgd20": 1_000_000, "mma": 2_000_000, "aa": 3_000_000, "aa-standard": 4_000_000,
                    "cam-info": 5_000_000, "map-info": 6_000_000, "road": 7_000_000}


_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 x < 2**32, without overflowing int64 (two 16-bit halves)."""
    return ((x & 0xFFFF) * c + ((((x >> 16) * c) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (Wellons' lowbias32) on int64 tensors holding values < 2**32."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def image_uniform(ids: torch.Tensor, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """(len(ids), *shape) float32 U[0, 1) draws, each image's a function of its id and `seed` alone
    (a counter-based hash of seed, id and element: the same on every device, for any batch)."""
    n = math.prod(shape)
    elem = torch.arange(n, device=ids.device, dtype=torch.int64)
    key = _hash32(torch.tensor(seed & _MASK32, device=ids.device, dtype=torch.int64))
    key = _hash32((key + ids.to(torch.int64)[:, None]) & _MASK32)
    bits = _hash32((key + _hash32(elem)[None, :]) & _MASK32)
    return ((bits >> 8).to(torch.float32) / float(1 << 24)).view(len(ids), *shape)


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

    def batch_seed(self, kind: str, epoch: int, batch: int) -> int:
        """The key of batch `batch`'s own draws in the epoch's stream of `kind` (the random maps': "maps";
        the official pairing's pass: "masks")."""
        return (self.seed(kind, epoch) * BATCH_STRIDE + batch) & _MASK32

    def fork(self, kind: str, epoch: int):
        """Run a side pass on its own seeded RNG and restore the training RNG afterwards."""
        return seeded(self.seed(kind, epoch), self.device)
