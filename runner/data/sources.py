"""The data sources: a dataset (runner/data/datasets.py) from --data-dir in the accepted layouts, held in
memory as uint8 (runner/data/split.py), with its source recorded (layout, path, files, sha256).

Layouts, tried in this order:
  (a) the dataset's own layout under the directory: torchvision's `cifar-10-batches-py/` (CIFAR-10)
      or `train_32x32.mat` + `test_32x32.mat` (SVHN), both downloaded there when missing and the
      network is there (unless --no-download); `tiny-imagenet-200/` (TinyImageNet: train/<wnid>/
      images/*.JPEG, val/images/*.JPEG with val/val_annotations.txt, wnids.txt);
  (b) an image-folder tree `ROOT/train/<class>/*` + `ROOT/test/<class>/*`, ROOT being the directory
      itself or a `cifar10/` (any case) folder in it;
  (c) a `.zip` holding such a tree (at any depth), read in place: --data-dir names the zip, or the
      directory holds exactly one zip whose name starts with the dataset's name (two such zips are
      refused, naming both).
Classes of (b) and (c) are the sorted folder names (airplane ... truck gives the canonical order;
SVHN's canonical order is the digit folders 0 ... 9); a class folder without images is refused, naming
it (a split without the folder at all is accepted). macOS's metadata (`__MACOSX/` trees and `._*`
AppleDouble files) is never an image and is skipped. The loaders are in runner/data/loaders.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import zipfile
import zlib
from pathlib import Path

from common.errors import UserError
from runner.data.datasets import DATASETS, Limits, check_tree
from runner.data.split import (IMAGE_EXTENSIONS, MACOS_METADATA, Split, WrongSize, empty_split, is_image_name,
                               stack_images)
from runner.infra.files import hash_file
from runner.infra.provenance import project_path


def _folder_entries(root: Path, classes: list[str]) -> list[tuple[str, int]]:
    return [(str(f), i) for i, c in enumerate(classes) if (root / c).is_dir()
            for f in sorted((root / c).iterdir()) if is_image_name(f.name) and f.is_file()]


def check_class_folders(name: str, prefix: str, with_images: dict[str, set[str]],
                        folders: dict[str, list[str]]) -> None:
    """A class folder that is there but holds no image would train and test on fewer classes than
    --data has, silently (`folders`: the class folders present in each split read, `with_images`: those
    holding an image; `prefix` + 'train/cat/' names one). A split without any image is left to
    check_not_empty (its own message); a split without the folder at all is fine (one class list)."""
    empty = [f"{split}/{c}/" for split, have in with_images.items() if have
             for c in folders.get(split, []) if c not in have]
    if empty:
        more = f" (and {len(empty) - 1} more: {', '.join(empty[1:4])}{' ...' if len(empty) > 4 else ''})" \
            if len(empty) > 1 else ""
        raise UserError(f"class folder {prefix}{empty[0]} holds no images{more} (looked for "
                        f"{', '.join(IMAGE_EXTENSIONS)}); every class of --data {name} needs its images: copy them "
                        f"again, or point --data-dir at complete data")


_ZIP_ENTRY = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<split>train|test)/(?P<cls>[^/]+)/[^/]+$")
_ZIP_FOLDER = re.compile(r"^(?P<prefix>(?:.*/)?)(?P<split>train|test)/(?P<cls>[^/]+)/$")


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
        folders: dict[str, dict[str, set[str]]] = {}     # class folders present (a zip lists its folders too)
        for name in zf.namelist():
            if MACOS_METADATA in name.split("/"):
                continue
            m = _ZIP_ENTRY.match(name)
            if m and is_image_name(name):
                found.setdefault(m["prefix"], {}).setdefault(m["split"], {}).setdefault(m["cls"], []).append(name)
            m = m or _ZIP_FOLDER.match(name)
            if m:
                folders.setdefault(m["prefix"], {}).setdefault(m["split"], set()).add(m["cls"])
        roots = [p for p, s in found.items() if _needed(need_train) <= s.keys()]
        want = "train/<class>/ + test/<class>/" if need_train else "test/<class>/"
        if not roots:
            raise UserError(f"{path} holds no single {want} tree")
        if len(roots) > 1:
            raise UserError(f"{path} holds {len(roots)} {want} trees ({', '.join(sorted(r or '/' for r in roots))}); "
                            "it must hold one: keep one of them in the zip, or unzip it and point --data-dir at one")
        tree = found[roots[0]]
        present = {split: sorted(folders.get(roots[0], {}).get(split, set())) for split in _needed(need_train)}
        classes = sorted(set(tree.get("train", {})) | set(tree["test"]) | {c for cs in present.values() for c in cs})
        if dataset is not None:
            check_tree(dataset, classes, f"{path} ({roots[0] or '/'})")
            check_class_folders(dataset, f"{path}:{roots[0]}",
                                {s: set(tree.get(s, {})) for s in _needed(need_train)}, present)
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
    if len(zips) > 1:       # either may be the data: guessing (or downloading beside them) would be wrong
        raise UserError(f"{root} holds {len(zips)} candidate data files ({', '.join(p.name for p in zips)}); point "
                        f"--data-dir at one of them (--data-dir {zips[0]})")
    return zips[0] if zips else None


def check_notempty_split(name: str, splits: tuple["Split", "Split"], where: str, need_train: bool) -> None:
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
    missing = [e for e in DATASETS[name].extras for s in splits if len(s) and e not in s.extras]
    if missing:
        raise UserError(f"the {name} data at {root.resolve()} carry no {missing[0]} per image (only its own reader "
                        "gives it; an image-folder tree or zip has none)")
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
            _check_native(name, base, native, need_train)
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
        listed = {split: _folder_entries(tree / split, classes) for split in _needed(need_train)}
        check_class_folders(name, f"{tree}/", {s: {classes[i] for _, i in entries} for s, entries in listed.items()},
                            {s: [c for c in classes if (tree / s / c).is_dir()] for s in listed})
        with _naming(name):
            test = stack_images(listed["test"], lambda n: n, classes, size, limits[1], "test")
            train = stack_images(listed["train"], lambda n: n, classes, size, limits[0], "train") if need_train \
                else empty_split(classes, size)
        files = sorted(f for split in _needed(need_train) for f in (tree / split).rglob("*")
                       if f.is_file() and is_image_name(f.relative_to(tree).as_posix()))
        check_notempty_split(name, (train, test), str(tree), need_train)
        return _with_source((train, test), "folder", tree, files)
    zpath = _zip_in(root, aliases)
    if zpath is not None:
        with _naming(name):
            splits, count = _zip_splits(zpath, size, (limits[0] if need_train else 0, limits[1]), need_train, name)
        check_notempty_split(name, splits, str(zpath), need_train)
        return _with_source(splits, "zip", zpath, [zpath], count)
    return None


def _check_native(name: str, base: Path, splits: tuple[Split, Split], need_train: bool) -> None:
    """A dataset's own layout with a split it needs empty (TinyImageNet without train/, say) would
    start a run on nothing: one line naming what of the layout is missing."""
    d = DATASETS[name]
    for split, data in zip(("train", "test"), splits):
        if (split == "test" or need_train) and len(data) == 0:
            missing = [f"{n}/" if "." not in n else n for n in d.native_files if not (base / n).exists()]
            lacks = f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing" if missing \
                else "no image files found"
            raise UserError(f"{base} ({name}'s own layout) has no {split} images: {lacks}; its layout: "
                            f"{d.layouts}")


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
    """Record on both splits where they came from: the layout, its path (relative to the project), how many files it
    holds and the sha256 over their names and bytes (for a zip, the sha256 of the zip file itself)."""
    h = hashlib.sha256()
    for f in files:
        if kind != "zip":
            h.update(f.relative_to(path).as_posix().encode() if f != path else f.name.encode())
        hash_file(h, f)
    source = {"layout": kind, "path": project_path(path), "files": count if count is not None else len(files),
              "sha256": h.hexdigest()}
    for split in splits:
        split.source = source
    return splits
