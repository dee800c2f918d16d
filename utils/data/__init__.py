"""The data: `datasets.py`, the datasets, one entry each (torch-free); `sources.py`, a dataset read from
--data-dir in any accepted layout, subsets; `loaders.py`, the training and evaluation loaders."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSettings:
    """What the training data are and how they are served, from the command line once."""
    batch_size: int              # the global training batch (each rank trains on its slice)
    augmentation: str            # crop-flip or none (auto resolved by the dataset's entry)
    loader: str                  # torch, resident or auto (resident on CUDA)
    workers: int                 # DataLoader workers (the torch loader)

    @classmethod
    def from_args(cls, args) -> "DataSettings":
        return cls(args.batch_size, args.augmentation, args.loader, args.workers)
