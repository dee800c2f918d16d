"""Data that cannot be trained on as it lies, met as a user meets it: one line on stderr, exit 2, nothing
written (an empty class folder, a dataset's own layout missing a split, two candidate zips, a zip holding
two trees); data that can (a zip made on macOS, a damaged canvas cache we rebuild)."""
import dataclasses
import shutil
import zipfile

import numpy as np

from tests.conftest import one_line, tiny_argv
from runner.data import canvas
from runner.data.datasets import DATASETS
from runner.data.sources import load_splits
from runner.main import main

SMALL = ("--batch-size", "16", "--num-steps", "1", "--test-subset", "16", "--epochs", "1", "--eval", "natural")


def _refused(capsys, data_dir, tmp_path, *needles, extra=()) -> str:
    """The training script on `data_dir` stops at once: exit 2, one line, no model folder."""
    out = tmp_path / "m"
    assert main("part", tiny_argv(data_dir, out, *SMALL, *extra)) == 2
    err = one_line(capsys, *needles)
    assert not out.exists()
    return err


def _mac_zip(folder, path, prefixes=("cifar10",)):
    """A zip as macOS's Archive Utility makes it: folder entries, and beside each tree a __MACOSX/ tree of
    `._*` AppleDouble files with the images' names (not images), and a `._*` file in the tree itself."""
    with zipfile.ZipFile(path, "w") as zf:
        for prefix in prefixes:
            for d in sorted(p for p in folder.rglob("*") if p.is_dir()):
                zf.writestr(f"{prefix}/{d.relative_to(folder).as_posix()}/", b"")
            for f in sorted(folder.rglob("*.png")):
                rel = f.relative_to(folder)
                zf.write(f, f"{prefix}/{rel.as_posix()}")
                zf.writestr(f"__MACOSX/{prefix}/{rel.parent.as_posix()}/._{rel.name}", b"\x00\x05\x16\x07 Mac OS X")
            zf.writestr(f"{prefix}/train/cat/._0000.png", b"\x00\x05\x16\x07 Mac OS X")
    return path


def test_an_empty_class_folder_is_named(tiny_folder, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_folder, data)
    for f in (data / "train" / "cat").iterdir():
        f.unlink()
    _refused(capsys, data, tmp_path, f"class folder {data}/train/cat/ holds no images")
    # The same tree zipped with its folder entries (as zip -r and the Finder make it).
    zipped = _mac_zip(data, tmp_path / "cifar10-x.zip")
    _refused(capsys, zipped, tmp_path, f"class folder {zipped}:cifar10/train/cat/ holds no images")


def test_tiny_imagenet_without_train_names_it(tiny_imagenet, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_imagenet, data)
    shutil.rmtree(data / "tiny-imagenet-200" / "train")
    err = _refused(capsys, data, tmp_path, f"{data / 'tiny-imagenet-200'}", "has no train images: train/ is missing",
                   extra=("--data", "TinyImagenet", "--test-subset", "8"))
    assert "IndexError" not in err


def test_two_candidate_zips_are_named_and_nothing_is_downloaded(tiny_zip, tmp_path, monkeypatch, capsys):
    fetched = []
    monkeypatch.setitem(DATASETS, "CIFAR10", dataclasses.replace(DATASETS["CIFAR10"], fetch=fetched.append))
    data = tmp_path / "data"
    data.mkdir()
    for name in ("cifar10-a.zip", "cifar10-b.zip"):
        shutil.copy(tiny_zip, data / name)
    argv = [a for a in tiny_argv(data, tmp_path / "m", *SMALL) if a != "--no-download"]
    assert main("part", argv) == 2
    one_line(capsys, "cifar10-a.zip", "cifar10-b.zip", "point --data-dir at one of them")
    assert fetched == [] and sorted(p.name for p in data.iterdir()) == ["cifar10-a.zip", "cifar10-b.zip"]
    assert not (tmp_path / "m").exists()


def test_a_zip_made_on_macos_loads_as_the_plain_zip(tiny_folder, tiny_zip, tmp_path):
    plain = load_splits("CIFAR10", tiny_zip, download=False)
    mac = load_splits("CIFAR10", _mac_zip(tiny_folder, tmp_path / "cifar10-mac.zip"), download=False)
    for a, b in zip(plain, mac):
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    # An AppleDouble file left in a folder tree (a copy to a FAT drive) is no image either.
    data = tmp_path / "data"
    shutil.copytree(tiny_folder, data)
    (data / "train" / "cat" / "._0003.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X")
    assert len(load_splits("CIFAR10", data, download=False)[0]) == len(plain[0])


def test_a_zip_with_two_trees_names_both(tiny_folder, tmp_path, capsys):
    zipped = _mac_zip(tiny_folder, tmp_path / "cifar10-two.zip", prefixes=("cifar10", "backup/cifar10"))
    _refused(capsys, zipped, tmp_path, "holds 2 train/<class>/ + test/<class>/ trees (backup/cifar10/, cifar10/)")


def test_a_damaged_canvas_cache_is_rebuilt(tiny_zip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PART_DATA_CACHE", str(tmp_path / "cache"))
    first = load_splits("CIFAR10-canvas", tiny_zip, download=False)
    capsys.readouterr()
    train_cache = next((tmp_path / "cache").glob("cifar10-canvas-train-*.npz"))
    train_cache.write_bytes(train_cache.read_bytes()[:300])          # cut short, as by a full disk
    again = load_splits("CIFAR10-canvas", tiny_zip, download=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"canvas cache {train_cache} is damaged" in out and "rebuilding it" in out, out
    for a, b in zip(first, again):
        assert np.array_equal(a.images, b.images) and np.array_equal(a.extras["box"], b.extras["box"])
    assert isinstance(canvas.read_cache(train_cache, len(first[0])), tuple)    # whole again
    load_splits("CIFAR10-canvas", tiny_zip, download=False)
    assert capsys.readouterr().out == ""


def test_an_unwritable_canvas_cache_isone_line(tiny_zip, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PART_DATA_CACHE", str(blocker / "cache"))
    _refused(capsys, tiny_zip, tmp_path, "cannot write the canvas cache", "$PART_DATA_CACHE",
             extra=("--data", "CIFAR10-canvas"))
