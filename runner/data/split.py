"""A split of a dataset in memory: its images (uint8), labels, classes, and what it came from; the fixed
subsets (--train-subset / --test-subset); images decoded and stacked from a list of names. Below the
dataset table (datasets.py) and the layouts (sources.py), which both build splits."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from common.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
MACOS_METADATA = "__MACOSX"     # the folder of AppleDouble files that macOS's Archive Utility adds to a zip
# Seed of the fixed permutation that --train-subset / --test-subset draw from, whatever --seed is,
# so that runs with different seeds see the same images.
SUBSET_SEED = 0


@dataclass
class Split:
    images: np.ndarray   # (N, H, W, 3) uint8
    labels: np.ndarray   # (N,) int64
    classes: list[str]
    indices: np.ndarray | None = None   # positions in the whole split when a subset was kept
    source: dict | None = None          # where the data came from (load_splits): kind, path, files, sha256
    extras: dict[str, np.ndarray] = field(default_factory=dict)   # per-image extras by name, each (N, ...),
                                        # those the dataset's entry names (`extras`): the canvas's "box"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        """Side of the (square) images."""
        return self.images.shape[1]

    def subset(self, n: int | None) -> "Split":
        idx = subset_indices(len(self), n)
        kept = idx if n is not None and n < len(self) else None
        if kept is not None and self.indices is not None:
            kept = self.indices[kept]
        return Split(self.images[idx], self.labels[idx], self.classes,
                     self.indices if kept is None else kept, self.source,
                     {name: values[idx] for name, values in self.extras.items()})


def subset_indices(total: int, n: int | None) -> np.ndarray:
    """Sorted indices of the first n of a fixed random permutation (all when n is None)."""
    if n is None or n >= total:
        return np.arange(total)
    g = torch.Generator().manual_seed(SUBSET_SEED)
    return np.sort(torch.randperm(total, generator=g)[:n].numpy())


class WrongSize(UserError):
    """An image of another size than the dataset's (`_find` names --data in the message)."""

    def __init__(self, name: str, found: tuple[int, int], size: int) -> None:
        super().__init__(f"image {name} is {found[0]}x{found[1]}, not {size}x{size}")
        self.name, self.found, self.size = name, found, size


def _decode(data: bytes | str | Path, size: int | None, name: str) -> np.ndarray:
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with Image.open(src) as im:
            im = im.convert("RGB")
    except OSError as exc:
        # PIL names the in-memory file (<_io.BytesIO object at 0x...>), not the image: say what it is.
        reason = "not an image PIL can identify (damaged, or not an image)" if isinstance(exc, UnidentifiedImageError) \
            else str(exc)
        raise UserError(f"cannot read image {name}: {reason}") from None
    if size is not None and im.size != (size, size):
        raise WrongSize(name, im.size, size)
    return np.asarray(im, dtype=np.uint8)


class AtMost(int):
    """A subset size that is a cap, not a request (--eval-only's defaults): a split smaller than it is
    used whole."""


def check_limit(split: str, limit: int | None, total: int) -> None:
    """--train-subset / --test-subset must not ask for more images than the split holds (an empty split
    is reported as such by check_not_empty)."""
    if limit is not None and not isinstance(limit, AtMost) and 0 < total < limit:
        raise UserError(f"--{split}-subset {limit} is larger than the {split} split, which holds {total} images; "
                        f"give at most {total} (or leave the flag out for all of them)")


def stack_images(entries: list[tuple[str, int]], read, classes: list[str], size: int | None,
           limit: int | None, split: str, where: str = "") -> Split:
    """The images of `entries` (name, class), or the fixed subset of `limit` of them, decoded; `where`
    prefixes each name in messages (a zip's path)."""
    check_limit(split, limit, len(entries))
    idx = subset_indices(len(entries), limit)
    kept = idx if limit is not None and limit < len(entries) else None
    entries = [entries[i] for i in idx]
    if not entries:
        return empty_split(classes, size)
    images = np.stack([_decode(read(name), size, where + name) for name, _ in entries])
    return Split(images, np.array([c for _, c in entries], dtype=np.int64), classes, kept)


def is_image_name(name: str) -> bool:
    """A file name (or zip member path) that holds an image: an image extension, and not macOS's
    metadata (a `._*` AppleDouble file, or anything under `__MACOSX/`), which carries those names too."""
    parts = name.replace("\\", "/").split("/")
    return (name.lower().endswith(IMAGE_EXTENSIONS) and not parts[-1].startswith("._")
            and MACOS_METADATA not in parts)


def empty_split(classes: list[str], size: int | None) -> Split:
    return Split(np.zeros((0, size or 0, size or 0, 3), np.uint8), np.zeros(0, np.int64), classes)
