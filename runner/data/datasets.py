"""The datasets, one entry each: name, class count and class folder names, image size, the accepted
layouts and the folder / zip names under --data-dir, the reader of its own layout and its download,
what the official scripts force for it, its augmentation, and the per-image extras its images carry, if any.
The command line, the data sources (runner/data/sources.py) and the checks read this table alone.

A new image-folder dataset is one entry (an image-folder tree or zip needs no reader of its own).
Torch-free at import (the command line lists the datasets): each reader imports what it needs when it runs.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError

Limits = tuple  # (train subset, test subset): int or None each


# --- the readers of the datasets' own layouts, and their downloads (torchvision's) ---------------

def cifar10_native(root: Path, limits: Limits):
    import numpy as np
    from torchvision.datasets import CIFAR10

    from runner.data.split import Split, check_limit
    if not (root / "cifar-10-batches-py").is_dir():
        return None
    try:
        train, test = CIFAR10(str(root), train=True), CIFAR10(str(root), train=False)
    except RuntimeError as exc:
        raise UserError(f"{root / 'cifar-10-batches-py'}: {exc}") from None
    for split, d, n in zip(("train", "test"), (train, test), limits):
        check_limit(split, n, len(d.data))
    return tuple(Split(np.asarray(d.data, np.uint8), np.asarray(d.targets, np.int64), list(d.classes)).subset(n)
                 for d, n in zip((train, test), limits))


def svhn_native(root: Path, limits: Limits):
    import numpy as np
    from torchvision.datasets import SVHN

    from runner.data.split import Split, check_limit
    if not all((root / f"{split}_32x32.mat").is_file() for split in ("train", "test")):
        return None
    try:
        sets = [SVHN(str(root), split=split) for split in ("train", "test")]
    except (RuntimeError, ValueError, OSError) as exc:
        raise UserError(f"{root}: SVHN files unreadable: {exc}") from None
    for split, d, n in zip(("train", "test"), sets, limits):
        check_limit(split, n, len(d.data))
    return tuple(Split(np.ascontiguousarray(d.data.transpose(0, 2, 3, 1)), np.asarray(d.labels, np.int64),
                       [str(i) for i in range(10)]).subset(n) for d, n in zip(sets, limits))


def fetch_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    CIFAR10(str(root), train=True, download=True)


def fetch_svhn(root: Path) -> None:
    from torchvision.datasets import SVHN
    for split in ("train", "test"):
        SVHN(str(root), split=split, download=True)


def cifar10_canvas(base, limits: Limits):
    from runner.data.canvas import canvas_splits
    return canvas_splits(base, limits)


def tiny_base(root: Path) -> Path:
    """TinyImageNet's folder: root itself when it holds wnids.txt, else root/tiny-imagenet-200."""
    return root if (root / "wnids.txt").is_file() else root / "tiny-imagenet-200"


def tiny_native(root: Path, limits: Limits):
    from runner.data.split import is_image_name, stack_images
    base = tiny_base(root)
    if not (base / "wnids.txt").is_file():
        return None
    classes = sorted((base / "wnids.txt").read_text().split())
    check_tree("TinyImagenet", classes, str(base / "wnids.txt"))
    index = {c: i for i, c in enumerate(classes)}
    train = [(str(f), index[c]) for c in classes
             for f in sorted((base / "train" / c / "images").glob("*")) if is_image_name(f.name)]
    try:
        rows = [line.split("\t") for line in (base / "val" / "val_annotations.txt").read_text().splitlines() if line]
        val = [(str(base / "val" / "images" / r[0]), index[r[1]]) for r in sorted(rows)]
    except (OSError, KeyError, IndexError) as exc:
        raise UserError(f"{base / 'val' / 'val_annotations.txt'} is missing or malformed: {exc}") from None
    return (stack_images(train, lambda n: n, classes, 64, limits[0], "train"),
            stack_images(val, lambda n: n, classes, 64, limits[1], "test"))


# --- the table -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    name: str                                   # --data
    classes: int                                # every layout is checked to hold exactly this many
    image_size: int
    aliases: tuple[str, ...]                    # folder and zip names under --data-dir (lower case)
    layouts: str                                # the accepted layouts, for the no-data message
    class_names: tuple[str, ...] | None = None  # the class folders an image-folder tree must have
    class_pattern: str | None = None            # or the pattern every class folder name matches
    class_pattern_help: str = ""                # that pattern in words, for the mismatch message
    native: Callable | None = None              # native(root, limits) -> (train, test) of its own layout, or None
    native_files: tuple[str, ...] = ()          # what of its own layout the results' sha256 covers
    base: Callable[[Path], Path] = lambda root: root   # the folder its own layout lies in
    fetch: Callable | None = None               # fetch(root): download its own layout (torchvision's)
    overrides: dict = field(default_factory=dict)   # {setting: (flag, value)} the official scripts force
    augmentation: str = "crop-flip"             # what --augmentation auto means for it
    extras: tuple[str, ...] = ()                # the per-image extras its splits carry, by name (Split.extras)
    derived_from: str | None = None             # generated from this dataset's whole splits, found as it is
    derive: Callable | None = None              # derive((train, test), limits) -> its (train, test)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_TREE = "DIR/train/<class>/ + DIR/test/<class>/"

DATASETS = {d.name: d for d in (
    # Class folders' sorted order is the canonical one (airplane ... truck).
    Dataset("CIFAR10", 10, 32, ("cifar10", "cifar-10"),
            f"DIR/cifar-10-batches-py/ (torchvision), {_TREE} (also under DIR/cifar10/), or a .zip of such a tree "
            "(--data-dir FILE.zip or DIR/cifar10*.zip)", class_names=CIFAR10_CLASSES, native=cifar10_native,
            native_files=("cifar-10-batches-py",), fetch=fetch_cifar10),
    # The official scripts' SVHN settings, applied unless the flag is given; no augmentation, as upstream.
    Dataset("SVHN", 10, 32, ("svhn",),
            f"DIR/train_32x32.mat + DIR/test_32x32.mat (torchvision), {_TREE} (also under DIR/svhn/), or a .zip of "
            "such a tree (--data-dir FILE.zip or DIR/svhn*.zip)", class_names=tuple(str(d) for d in range(10)),
            native=svhn_native, native_files=("train_32x32.mat", "test_32x32.mat"), fetch=fetch_svhn,
            overrides={"step_size": ("--step-size", 1 / 255), "weight_decay": ("--weight-decay", 0.0035),
                       "lr": ("--lr", 0.01), "batch_size": ("--batch-size", 128)}, augmentation="none"),
    # Class folders are WordNet ids (n + 8 digits).
    Dataset("TinyImagenet", 200, 64, ("tiny-imagenet-200", "tiny-imagenet", "tinyimagenet"),
            f"DIR/tiny-imagenet-200/ (train/<wnid>/images/, val/images/ + val/val_annotations.txt, wnids.txt), "
            f"{_TREE}, or a .zip of such a tree", class_pattern=r"n\d{8}",
            class_pattern_help="WordNet ids (n + 8 digits)", native=tiny_native,
            native_files=("wnids.txt", "train", "val"), base=tiny_base),
    # The positive control of PART's placement (runner/data/canvas.py): each CIFAR-10 image shrunk to 24x24 at a
    # random place on a canvas of clutter, its box a per-image extra; no augmentation (it would move the boxes).
    Dataset("CIFAR10-canvas", 10, 32, ("cifar10", "cifar-10"),
            "generated from CIFAR-10 at --data-dir (any of CIFAR-10's layouts) and cached under $PART_DATA_CACHE "
            "(default data/cache/)", class_names=CIFAR10_CLASSES, augmentation="none", extras=("box",),
            derived_from="CIFAR10", derive=cifar10_canvas),
)}


def check_tree(name: str, classes: list[str], where: str) -> None:
    """An image-folder tree or zip must hold dataset `name` (--data): its class count and class folder
    names. A mismatch (SVHN settings on CIFAR-10 images, say) would train and label silently wrong."""
    d = DATASETS[name]
    want = d.classes
    shown = ", ".join(classes[:12]) + (f", ... ({len(classes)} in all)" if len(classes) > 12 else "")
    if len(classes) != want:
        raise UserError(f"{where} has {len(classes)} class folders ({shown or 'none'}), but --data {name} has "
                        f"{want} classes; give the --data of these images, or point --data-dir at {name}")
    if d.class_names is not None:
        if sorted(classes) != sorted(d.class_names):
            odd = [c for c in classes if c not in d.class_names]
            raise UserError(f"{where} has class folders {', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''} that "
                            f"--data {name} does not have (its classes: {', '.join(d.class_names)}); give the "
                            f"--data of these images, or point --data-dir at {name}")
    elif d.class_pattern is not None:
        odd = [c for c in classes if not re.fullmatch(d.class_pattern, c)]
        if odd:
            raise UserError(f"{where} has class folders {', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''} that are "
                            f"not {d.class_pattern_help or d.class_pattern} as --data {name} has; give the --data of "
                            f"these images, or point --data-dir at {name}")
