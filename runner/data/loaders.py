"""The loaders of a split (runner/data/sources.py): a torch Dataset of it, the training pass's batches
(per sample on the CPU, or resident on the device with batched augmentation), the evaluation's loaders,
each in an order drawn from its seed alone."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from runner.data.split import Split
from runner.infra.distributed import shard


class ArraySplit(Dataset):
    """A Split as a torch Dataset of (float CHW in [0, 1], label), and a dict of the image's extras where the
    split has any (Split.extras; batched by the loader into a dict of tensors); augmentation on uint8 tensors."""

    def __init__(self, split: Split, augment: transforms.Compose | None = None) -> None:
        self.images = torch.from_numpy(split.images).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8 view
        self.labels = torch.from_numpy(split.labels)
        # Each image's index in the whole split (a subset keeps its images' own): the evaluation's
        # per-image random streams are keyed by it.
        self.ids = None if split.indices is None else torch.as_tensor(split.indices, dtype=torch.long)
        self.extras = {name: torch.from_numpy(values) for name, values in split.extras.items()}
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        img = self.images[i]
        if self.augment is not None:
            img = self.augment(img)
        if self.extras:
            return img.float().div_(255), self.labels[i], {name: values[i] for name, values in self.extras.items()}
        return img.float().div_(255), self.labels[i]


def on_device(batch: tuple, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(x, y, extras) of a loader's batch, on `device`: extras the batch's per-image extras by name, {} where
    the data have none (what the maps that read one are given: part.step.train_batch's `extras`)."""
    x, y, *rest = batch
    extras = {name: values.to(device) for name, values in rest[0].items()} if rest else {}
    return x.to(device), y.to(device), extras


def train_augmentation(size: int, padding: int = 4) -> transforms.Compose:
    """Random crop with zero padding and horizontal flip, as the official CIFAR-10 loader."""
    return transforms.Compose([transforms.RandomCrop(size, padding=padding), transforms.RandomHorizontalFlip()])


def epoch_order(n: int, shuffle_seed: int | None) -> torch.Tensor:
    """The order of one pass: a permutation drawn from the seed alone (None: in order), so that
    resumes replay it and both loaders agree."""
    if shuffle_seed is None:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))


def make_loader(dataset: Dataset, batch_size: int, shuffle_seed: int | None, workers: int = 0) -> DataLoader:
    """A DataLoader in epoch_order (the evaluation's loaders: every rank sees every batch).

    Its own generator seeds the workers, so creating the loader draws nothing from the global RNG
    (which the attacks use) and both loaders leave that stream alike."""
    gen = torch.Generator().manual_seed(0 if shuffle_seed is None else shuffle_seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=epoch_order(len(dataset), shuffle_seed).tolist(),
                      num_workers=workers, drop_last=False, generator=gen)


def rank_batches(n: int, batch_size: int, shuffle_seed: int | None, rank: int = 0, world: int = 1) -> list:
    """The index batches of one pass for this rank: the global batches of epoch_order (batch_size
    each, the last one smaller), each split into `world` near-equal slices. Under torchrun a last
    batch with fewer images than ranks is dropped (every rank must train on every step)."""
    batches = list(epoch_order(n, shuffle_seed).split(batch_size))
    if world > 1:
        if batches and len(batches[-1]) < world:
            batches = batches[:-1]
        batches = [shard(b, rank, world) for b in batches]
    return batches


def train_loader(dataset: Dataset, batch_size: int, shuffle_seed: int | None, workers: int = 0,
                 rank: int = 0, world: int = 1) -> DataLoader:
    """The training pass on the CPU path: this rank's batches (rank_batches); augmentation runs per
    sample in the workers. With one process these are make_loader's batches exactly."""
    gen = torch.Generator().manual_seed(0 if shuffle_seed is None else shuffle_seed)
    return DataLoader(dataset, batch_sampler=[b.tolist() for b in rank_batches(len(dataset), batch_size, shuffle_seed,
                                                                               rank, world)],
                      num_workers=workers, generator=gen)


def crop_flip(images: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Batched random crop (zero padding, offsets uniform over 0..2*padding) and horizontal flip
    (probability 1/2), per sample, as torchvision's RandomCrop + RandomHorizontalFlip; one gather
    on the images' device, no per-image loop. images: (B, C, H, W), any dtype."""
    b, c, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (b, 1), device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b, 1), device=dev)
    flip = torch.rand(b, 1, device=dev) < 0.5
    rows = oy + torch.arange(h, device=dev)
    cols = ox + torch.arange(w, device=dev)
    cols = torch.where(flip, cols.flip(1), cols)
    return padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class ResidentLoader:
    """A split held on the device as uint8, shuffled by a per-epoch seed, augmented in batches on the
    device (crop_flip). Yields (float images in [0, 1], labels[, extras]) like train_loader over
    ArraySplit, this rank's slice of each global batch."""

    def __init__(self, split: Split, batch_size: int, shuffle_seed: int | None, augment: bool,
                 device: torch.device | str, padding: int = 4, rank: int = 0, world: int = 1) -> None:
        self.dataset = split
        self.images = torch.from_numpy(split.images).permute(0, 3, 1, 2).contiguous().to(device)
        # uint8 -> [0, 1] by a table divided on the CPU: CUDA divides a tensor by a scalar as a product
        # with its reciprocal, 1 ulp off ToTensor's division for some values (seen on an H200).
        self.unit = (torch.arange(256, dtype=torch.float32) / 255).to(device)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.extras = {name: torch.from_numpy(values).to(device) for name, values in split.extras.items()}
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.augment = augment
        self.padding = padding
        self.rank, self.world = rank, world

    def _batches(self) -> list:
        return rank_batches(len(self.labels), self.batch_size, self.shuffle_seed, self.rank, self.world)

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self):
        batches = self._batches()
        if not batches:
            return
        # One copy of the epoch's order to the device (a copy per batch would sync the host each time).
        order = torch.cat(batches).to(self.images.device)
        for batch in order.split([len(b) for b in batches]):
            x = self.images[batch]
            if self.augment:
                x = crop_flip(x, self.padding)
            if self.extras:
                yield self.unit[x.int()], self.labels[batch], {name: v[batch] for name, v in self.extras.items()}
            else:
                yield self.unit[x.int()], self.labels[batch]
