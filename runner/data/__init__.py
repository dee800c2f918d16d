"""The data: `datasets.py`, the datasets, one entry each (torch-free); `sources.py`, a dataset read from
--data-dir in any accepted layout, subsets; `loaders.py`, the training and evaluation loaders."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSettings:
    """What the data are and how they are served, from the command line once."""
    data: str                    # the dataset's entry (runner/data/datasets.py)
    data_dir: str                # where it is looked for (runner/data/sources.py)
    download: bool               # torchvision's download when it is not there
    train_subset: int | None     # a fixed random subset of the training images
    test_subset: int | None      # and of the test images
    batch_size: int              # the global training batch (each rank trains on its slice)
    augmentation: str            # crop-flip or none (auto resolved by the dataset's entry)
    loader: str                  # torch, resident or auto (resident on CUDA)
    workers: int                 # DataLoader workers (the torch loader)

    @classmethod
    def from_args(cls, args) -> "DataSettings":
        return cls(args.data, args.data_dir, not args.no_download, args.train_subset, args.test_subset,
                   args.batch_size, args.augmentation, args.loader, args.workers)
