"""Seeded side streams: a block of code on its own seeded RNG, the caller's RNG state untouched."""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run the block with the CPU RNG (and `device`'s, if CUDA) seeded to `seed`; restore them after."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
