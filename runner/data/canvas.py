"""CIFAR-10 on a canvas (`--data CIFAR10-canvas`): a positive control for PART's placement, with each
image's object box known.

Each image of a CIFAR-10 split is shrunk to OBJECT x OBJECT pixels and pasted at a random place on a
32 x 32 canvas of clutter: a 4 x 4 grid of 8 x 8 patches, each cut at a random place from a random
other image of the same split. The label is the CIFAR-10 image's; the box (top, left, bottom, right;
the last two exclusive) is where the object lies. Everything is drawn from one seeded stream per split
(CANVAS_SEED), so the canvas is a function of the source images alone; it is generated once from
whatever CIFAR-10 --data-dir holds (any of CIFAR-10's layouts) and cached, keyed by the source's
sha256 and these settings, under $PART_DATA_CACHE (default: the repository's data/cache/). The cache is
ours to regenerate: a cache file that cannot be read back whole (truncated, a CRC error, not an npz, other
shapes) is rebuilt from the source images, saying so in one line on stdout; a cache folder that cannot be
written is one line naming it and $PART_DATA_CACHE.

| setting | value | why |
|---|---|---|
| OBJECT | 24 | a 24 x 24 object (56.25 % of the pixels): a probe found AT learns it at the CPU scale (30.55 % natural, 20.20 % PGD-20) and attacking the box alone costs 2.0 points more than a random 56 %; a 16 x 16 object was not learnt (16.9 % natural) and a 32 x 16 half-canvas object barely mattered (0.2 points) |
| placement | uniform over the 9 x 9 top-left corners | the object can be anywhere: no fixed region a model could learn instead of looking |
| clutter | 8 x 8 patches of other images of the split | natural-image statistics outside the box, but no object: the label is not there |
| resize | bilinear with antialiasing (torch) | deterministic on every machine, no per-image loop |
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from runner.data.split import Split
from common.errors import UserError
from runner.infra.files import hash_file
from runner.infra.provenance import project_path

CANVAS = 32
OBJECT = 24
PATCH = 8
CANVAS_SEED = 0
SETTINGS = {"canvas": CANVAS, "object": OBJECT, "patch": PATCH, "seed": CANVAS_SEED, "version": 1}
REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("PART_DATA_CACHE") or REPO / "data" / "cache")


def shrink(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8, bilinear with antialiasing, in chunks."""
    import torch
    import torch.nn.functional as F
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i in range(0, len(images), 4096):
        x = torch.from_numpy(images[i:i + 4096]).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[i:i + 4096] = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def make_canvas(images: np.ndarray, split_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The canvases of a whole split and their boxes: ((N, 32, 32, 3) uint8, (N, 4) int64)."""
    n = len(images)
    rng = np.random.default_rng([CANVAS_SEED, split_id])
    grid = CANVAS // PATCH
    # Clutter: patch k of canvas i is cut at (oy, ox) from image donor[i, k] != i.
    donor = rng.integers(0, max(n - 1, 1), size=(n, grid * grid))
    donor = donor + (donor >= np.arange(n)[:, None]) if n > 1 else donor
    offset = rng.integers(0, CANVAS - PATCH + 1, size=(n, grid * grid, 2))
    r = np.arange(PATCH)
    rows = offset[:, :, 0, None, None] + r[None, None, :, None]          # (n, 16, 8, 1)
    cols = offset[:, :, 1, None, None] + r[None, None, None, :]          # (n, 16, 1, 8)
    patches = images[donor[:, :, None, None], rows, cols]               # (n, 16, 8, 8, 3)
    canvas = patches.reshape(n, grid, grid, PATCH, PATCH, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, CANVAS, CANVAS, 3)
    canvas = np.ascontiguousarray(canvas)
    # The object, at a uniformly random top-left corner.
    corner = rng.integers(0, CANVAS - OBJECT + 1, size=(n, 2))
    objects = shrink(images, OBJECT)
    for top, left in {tuple(c) for c in corner.tolist()}:               # 81 places, each pasted at once
        at = np.flatnonzero((corner[:, 0] == top) & (corner[:, 1] == left))
        canvas[at, top:top + OBJECT, left:left + OBJECT] = objects[at]
    boxes = np.concatenate([corner, corner + OBJECT], 1).astype(np.int64)
    return canvas, boxes


# What reading a damaged npz raises: a truncated or overwritten zip, a CRC error, bytes that are no npz
# (numpy then takes them for a pickle and refuses it), a missing array.
DAMAGED = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError)


def read_cache(path: Path, n: int) -> tuple[np.ndarray, np.ndarray] | str:
    """The (images, boxes) of a cache file of a split of n images, or why it cannot be used."""
    try:
        with np.load(path) as f:
            images, boxes = f["images"], f["boxes"]
    except DAMAGED as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable'}"
    if images.shape != (n, CANVAS, CANVAS, 3) or images.dtype != np.uint8 or boxes.shape != (n, 4):
        return f"it holds images {images.shape} and boxes {boxes.shape}, not ({n}, {CANVAS}, {CANVAS}, 3) and ({n}, 4)"
    return images, boxes


def _unwritable(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write the canvas cache {path}: {exc.strerror or exc}; set $PART_DATA_CACHE to a "
                     "writable folder")


def make_cache_folder(path: Path) -> None:
    """The cache file's folder, made before the canvas is (an unwritable one is found before that work)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(path, exc) from None


def write_cache(path: Path, images: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> None:
    """Written whole or not at all (a temporary file, then renamed over the cache file)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, images=images, boxes=boxes, labels=labels)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise _unwritable(path, exc) from None


def canvas_splits(base: tuple[Split, Split], limits: tuple) -> tuple[Split, Split]:
    """The canvas of CIFAR-10's (train, test) splits `base` (whole), cached; then the fixed subsets."""
    out = []
    for split_id, (name, split, limit) in enumerate(zip(("train", "test"), base, limits)):
        if len(split) == 0:
            out.append(split)
            continue
        key = hashlib.sha256(json.dumps({"source": (split.source or {}).get("sha256"), "split": name,
                                         "images": len(split), **SETTINGS}, sort_keys=True).encode()).hexdigest()
        path = cache_dir() / f"cifar10-canvas-{name}-{key[:16]}.npz"
        cached = read_cache(path, len(split)) if path.is_file() else None
        if isinstance(cached, str):
            print(f"canvas cache {path} is damaged ({cached}); rebuilding it from the source images", flush=True)
        if isinstance(cached, tuple):
            images, boxes = cached
        else:
            make_cache_folder(path)
            images, boxes = make_canvas(split.images, split_id)
            write_cache(path, images, boxes, split.labels)
        h = hashlib.sha256()
        hash_file(h, path)
        source = {"layout": "canvas", "path": project_path(path), "files": 1, "sha256": h.hexdigest(),
                  "canvas": SETTINGS, "from": split.source}
        whole = Split(images, split.labels, split.classes, None, source, {"box": boxes})
        out.append(whole.subset(limit))
    return out[0], out[1]
