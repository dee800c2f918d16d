"""The data sources: a dataset (utils/data/datasets.py) from --data-dir in the accepted layouts, held in
memory as uint8, with its source recorded (layout, path, files, sha256); subsets.

Layouts, tried in this order:
  (a) the dataset's own layout under the directory: torchvision's `cifar-10-batches-py/` (CIFAR-10)
      or `train_32x32.mat` + `test_32x32.mat` (SVHN), both downloaded there when missing and the
      network is there (unless --no-download); `tiny-imagenet-200/` (TinyImageNet: train/<wnid>/
      images/*.JPEG, val/images/*.JPEG with val/val_annotations.txt, wnids.txt);
  (b) an image-folder tree `ROOT/train/<class>/*` + `ROOT/test/<class>/*`, ROOT being the directory
      itself or a `cifar10/` (any case) folder in it;
  (c) a `.zip` holding such a tree (at any depth), read in place: --data-dir names the zip, or the
      directory holds exactly one zip whose name starts with the dataset's name.
Classes of (b) and (c) are the sorted folder names (airplane ... truck gives the canonical order;
SVHN's canonical order is the digit folders 0 ... 9). The loaders are in utils/data/loaders.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from utils.data.datasets import DATASETS, Limits, check_tree
from utils.infra.errors import UserError
from utils.infra.files import hash_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
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
    annotations: np.ndarray | None = None   # (N, 4) int64 object boxes (top, left, bottom, right; the last two
                                            # exclusive), where the dataset's entry has `annotation="box"`

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
                     None if self.annotations is None else self.annotations[idx])


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
        return _empty(classes, size)
    images = np.stack([_decode(read(name), size, where + name) for name, _ in entries])
    return Split(images, np.array([c for _, c in entries], dtype=np.int64), classes, kept)


def _folder_split(root: Path, classes: list[str], size: int | None, limit: int | None, split: str) -> Split:
    entries = [(str(f), i) for i, c in enumerate(classes) if (root / c).is_dir()
               for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    return stack_images(entries, lambda n: n, classes, size, limit, split)


_ZIP_ENTRY = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<split>train|test)/(?P<cls>[^/]+)/[^/]+$")


def _empty(classes: list[str], size: int | None) -> Split:
    return Split(np.zeros((0, size or 0, size or 0, 3), np.uint8), np.zeros(0, np.int64), classes)


def _needed(need_train: bool) -> set[str]:
    return {"train", "test"} if need_train else {"test"}


def _zip_splits(path: Path, size: int | None, limits: tuple[int | None, int | None],
                need_train: bool = True, dataset: str | None = None) -> tuple[tuple[Split, Split], int]:
    """The splits of the tree in the zip, and how many image files of it were used."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"cannot read zip {path}: {exc}") from None
    with zf:
        found: dict[str, dict[str, dict[str, list[str]]]] = {}
        for name in zf.namelist():
            m = _ZIP_ENTRY.match(name)
            if m and name.lower().endswith(IMAGE_EXTENSIONS):
                found.setdefault(m["prefix"], {}).setdefault(m["split"], {}).setdefault(m["cls"], []).append(name)
        roots = [p for p, s in found.items() if _needed(need_train) <= s.keys()]
        if len(roots) != 1:
            want = "train/<class>/ + test/<class>/" if need_train else "test/<class>/"
            raise UserError(f"{path} holds no single {want} tree")
        tree = found[roots[0]]
        classes = sorted(set(tree.get("train", {})) | set(tree["test"]))
        if dataset is not None:
            check_tree(dataset, classes, f"{path} ({roots[0] or '/'})")
        splits = []
        for split, limit in zip(("train", "test"), limits):
            entries = [(n, i) for i, c in enumerate(classes) for n in sorted(tree.get(split, {}).get(c, []))]
            try:
                splits.append(stack_images(entries, zf.read, classes, size, limit, split, f"{path}:"))
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise UserError(f"{path} is damaged ({exc}); copy or download it again") from None
    return (splits[0], splits[1]), sum(len(v) for split in _needed(need_train) for v in tree.get(split, {}).values())


def _image_tree(root: Path, aliases: tuple[str, ...], need_train: bool = True) -> Path | None:
    candidates = [root] + [p for p in sorted(root.iterdir()) if p.is_dir() and p.name.lower() in aliases] \
        if root.is_dir() else []
    for c in candidates:
        if all((c / split).is_dir() for split in _needed(need_train)):
            return c
    return None


def _zip_in(root: Path, aliases: tuple[str, ...]) -> Path | None:
    if root.is_file() and root.suffix.lower() == ".zip":
        return root
    if not root.is_dir():
        return None
    zips = [p for p in sorted(root.glob("*.zip")) if p.name.lower().startswith(aliases)]
    return zips[0] if len(zips) == 1 else None


def check_not_empty(name: str, splits: tuple["Split", "Split"], where: str, need_train: bool) -> None:
    """Class folders without images would start a run on nothing."""
    for split, data in zip(("train", "test"), splits):
        if (split == "test" or need_train) and len(data) == 0:
            raise UserError(f"{where} has no images in its {split}/<class>/ folders (looked for "
                            f"{', '.join(IMAGE_EXTENSIONS)}); point --data-dir at {name}")


def load_splits(name: str, data_dir: str | os.PathLike, download: bool = True,
                train_subset: int | None = None, test_subset: int | None = None,
                need_train: bool = True) -> tuple[Split, Split]:
    """(train, test) of dataset `name` from `data_dir`, in the first layout that is there.

    `train_subset` / `test_subset` keep a fixed random subset (the same for every --seed); only
    those images are decoded. With need_train=False (evaluation only) a folder or zip holding only
    the test tree is enough, and the training split is not decoded.
    """
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name}; choose from {', '.join(DATASETS)}")
    d = DATASETS[name]
    if d.derived_from is not None:      # generated from another dataset's whole splits (the canvas)
        base = load_splits(d.derived_from, data_dir, download, need_train=need_train)
        return d.derive(base, (train_subset, test_subset))
    root = Path(data_dir)
    splits = _find(name, root, (train_subset, test_subset), need_train)
    tried = "not needed"
    if splits is None:
        if root.exists() and not root.is_dir():
            tried = "not tried (--data-dir is a file)"
        else:
            tried = _download(name, root, download)
            splits = _find(name, root, (train_subset, test_subset), need_train) if tried == "done" else None
    if splits is None:
        raise UserError(f"no {name} data found at {root.resolve()} (--data-dir {data_dir}); download {tried}; "
                        f"accepted layouts: {DATASETS[name].layouts}; point --data-dir at one of them")
    if DATASETS[name].annotation and any(s.annotations is None for s in splits if len(s)):
        raise UserError(f"the {name} data at {root.resolve()} carry no object boxes (only its own reader gives "
                        "them; an image-folder tree or zip has none)")
    return splits


def _download(name: str, root: Path, download: bool) -> str:
    """Fetch the dataset's own files into root; what happened, for the no-data message."""
    fetch = DATASETS[name].fetch
    if fetch is None:
        return f"not available for {name}"
    if not download:
        return "not tried (--no-download)"
    made = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch(root)
    except Exception as exc:   # offline, refused, no space: the reason goes into the message
        if made and root.is_dir() and not any(root.iterdir()):
            root.rmdir()      # leave no empty folder behind
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"tried and failed ({type(exc).__name__}: {reason})"
    return "done"


def _find(name: str, root: Path, limits: Limits, need_train: bool) -> tuple[Split, Split] | None:
    """The splits in the first layout present under root (nothing fetched), each with its source."""
    d = DATASETS[name]
    size, aliases = d.image_size, d.aliases
    if root.is_dir() and d.native is not None:
        native = d.native(root, limits)
        if native is not None:
            base = d.base(root)
            files = [f for n in d.native_files if (base / n).exists()
                     for f in ([base / n] if (base / n).is_file() else sorted(p for p in (base / n).rglob("*")
                                                                           if p.is_file()))]
            return _with_source(native, "native", base, files)
    tree = _image_tree(root, aliases, need_train)
    if tree is not None:
        # One class list for both splits (the union, as for zips), so a split missing a class
        # folder cannot shift the labels of the other.
        classes = sorted({p.name for split in ("train", "test") if (tree / split).is_dir()
                          for p in (tree / split).iterdir() if p.is_dir()})
        check_tree(name, classes, str(tree))
        with _naming(name):
            test = _folder_split(tree / "test", classes, size, limits[1], "test")
            train = _folder_split(tree / "train", classes, size, limits[0], "train") if need_train else _empty(classes, size)
        files = sorted(f for split in _needed(need_train) for f in (tree / split).rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        check_not_empty(name, (train, test), str(tree), need_train)
        return _with_source((train, test), "folder", tree, files)
    zpath = _zip_in(root, aliases)
    if zpath is not None:
        with _naming(name):
            splits, count = _zip_splits(zpath, size, (limits[0] if need_train else 0, limits[1]), need_train, name)
        check_not_empty(name, splits, str(zpath), need_train)
        return _with_source(splits, "zip", zpath, [zpath], count)
    return None


@contextlib.contextmanager
def _naming(dataset: str):
    """An image of the wrong size, reported with the --data that expected another."""
    try:
        yield
    except WrongSize as exc:
        raise UserError(f"image {exc.name} is {exc.found[0]}x{exc.found[1]}, but --data {dataset} has "
                        f"{exc.size}x{exc.size} images; give the --data of these images, or point --data-dir "
                        f"at {dataset}") from None


def _with_source(splits: tuple[Split, Split], kind: str, path: Path, files: list[Path],
                 count: int | None = None) -> tuple[Split, Split]:
    """Record on both splits where they came from: the layout, its absolute path, how many files it
    holds and the sha256 over their names and bytes (for a zip, the sha256 of the zip file itself)."""
    h = hashlib.sha256()
    for f in files:
        if kind != "zip":
            h.update(f.relative_to(path).as_posix().encode() if f != path else f.name.encode())
        hash_file(h, f)
    source = {"layout": kind, "path": str(path.resolve()), "files": count if count is not None else len(files),
              "sha256": h.hexdigest()}
    for split in splits:
        split.source = source
    return splits
