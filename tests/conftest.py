"""Tiny datasets written in the real on-disk layouts, and helpers to run the trainer in-process."""
from __future__ import annotations

import functools
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import exchange.eval_only  # noqa: F401  (as the three scripts: --eval-only robustbench:NAME)
import studies.evaluations  # noqa: F401  (as the three scripts: --eval cam-info, map-info, road)
from runner.cli.args import get_args
from runner.training.run import run

# Under pytest-xdist (`python -m pytest -n auto`) each worker computes with one thread, and so do the
# processes it starts: on 2 cores, two torch processes at the default thread count spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)



@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """A run with --threads N sets torch's thread count for the whole process: put it back after each test."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


REPO = Path(__file__).resolve().parent.parent
SHARED_ZIP = REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"
# Reference epsilon maps of the official mask pipeline (a copy of ../shared/fixtures/, 57 KB).
FIXTURE = REPO / "tests" / "official_mask_rule.npz"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


SVHN_CLASSES = [str(d) for d in range(10)]
# TinyImageNet's 200 WordNet ids (made up, in the n + 8 digits form the dataset check expects).
TINY_CLASSES = [f"n{10_000_000 + 37 * i:08d}" for i in range(200)]


def synthetic_split(n: int, seed: int, size: int = 32, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean colour depends on the class, so a model can learn something."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    base = rng.integers(0, 256, size=(classes, 1, 1, 3))
    noise = rng.integers(-40, 41, size=(n, size, size, 3))
    images = np.clip(base[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_image_tree(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                     names: list[str] = CLASSES) -> Path:
    for split, (images, labels) in splits.items():
        for i, (img, lab) in enumerate(zip(images, labels)):
            folder = root / split / names[lab]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def trust_fake_files(monkeypatch):
    """Our tiny fakes of torchvision's CIFAR-10 and SVHN files would fail its md5 checks."""
    import torchvision
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.svhn, "check_integrity", lambda *a, **k: True)


@pytest.fixture(scope="session")
def tiny_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": synthetic_split(80, 0), "test": synthetic_split(40, 1)}


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_splits) -> Path:
    """Layout (b): ROOT/train/<class>/*.png + ROOT/test/<class>/*.png."""
    return write_image_tree(tmp_path_factory.mktemp("folder"), tiny_splits)


def zip_tree(folder: Path, path: Path, prefix: str) -> Path:
    """Zip an image-folder tree under `prefix/`, as the shared zip holds cifar10/train/..."""
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, f"{prefix}/" + f.relative_to(folder).as_posix())
    return path


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory, tiny_folder) -> Path:
    """Layout (c): a zip holding cifar10/train/... and cifar10/test/..., as the shared zip."""
    return zip_tree(tiny_folder, tmp_path_factory.mktemp("zip") / "cifar10-tiny.zip", "cifar10")


@pytest.fixture(scope="session")
def tiny_cifar_batches(tmp_path_factory, tiny_splits) -> Path:
    """Layout (a): torchvision's cifar-10-batches-py pickles (5 train batches + test batch)."""
    root = tmp_path_factory.mktemp("batches")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    images, labels = tiny_splits["train"]
    chunks = np.array_split(np.arange(len(labels)), 5)
    for i, idx in enumerate(chunks, 1):
        data = images[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1)
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": data, "labels": labels[idx].tolist()}, f)
    images, labels = tiny_splits["test"]
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": images.transpose(0, 3, 1, 2).reshape(len(labels), -1),
                     "labels": labels.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CLASSES}, f)
    return root


def trained_a_little(name: str):
    """A fresh copy of _trained_a_little(name) (made once per session)."""
    import copy
    return copy.deepcopy(_trained_a_little(name))


@functools.cache
def _trained_a_little(name: str):
    """A model after a few SGD steps, so that BatchNorm statistics and logits are not those of a
    fresh init (returned in eval mode). The small CNNs start with a zero last layer, so before any
    step every gradient CAM of theirs is zero and ignores its target class. "wideresnet" is a
    WRN-10-1 (the same head as WRN-34-10: BN, ReLU, pooling, linear) to keep the test small."""
    import torch
    import torch.nn.functional as F

    from models.wideresnet import WideResNet
    from models.zoo import build_model
    torch.manual_seed(0)
    model = WideResNet(10, 10, 1) if name == "wideresnet" else build_model(name, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def one_line(capsys, *needles) -> str:
    """What a command printed on stderr: one line (no traceback) holding each of `needles`."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# The tiny runs' model: the CPU study's BatchNorm CNN (2.8 M multiply-adds per 32x32 image; the TRADES small
# CNN, `smallcnn`: 15 M, about twice its time per batch here). A test of the small CNN names it.
TINY_MODEL = "smallcnn-bn"


def tiny_argv(data_dir: Path, out: Path, *extra: str) -> list[str]:
    """The command line of a tiny run: a small CNN and short attacks (later flags win)."""
    return ["--model", TINY_MODEL, "--data-dir", str(data_dir), "--no-download", "--batch-size", "32",
            "--num-steps", "2", "--epochs", "2", "--warm-up", "1", "--eval", "natural,pgd20",
            "--model-dir", str(out), "--no-progress", "--log-interval", "1000", *extra]


def train(data_dir: Path, out: Path, *extra: str, method: str = "part") -> dict:
    """Run the trainer in-process on tiny data with a small CNN and short attacks."""
    return run(get_args(method, tiny_argv(data_dir, out, *extra)))


# The one real-data run of the suite: the CPU study's small BatchNorm CNN, PGD-AT warm-up then PART at
# the paper's budgets (8/255, 7/255), on 1,200 images of the shared JPEG CIFAR-10 (28 % natural, 18 %
# PGD-20 here). Shared by the smoke test, the torchattacks / AutoAttack cross-checks, the evaluation
# budget test and the sharded evaluation (about 20 s here).
REAL_EPS, REAL_STEP = 8 / 255, 2 / 255
REAL_EPOCHS, REAL_WARM_UP = 6, 3
REAL_MODEL = "smallcnn-bn"
REAL_ARGS = ["--model", REAL_MODEL, "--channels-last", "--train-subset", "1200", "--test-subset", "500",
             "--epochs", str(REAL_EPOCHS), "--warm-up", str(REAL_WARM_UP), "--batch-size", "32", "--lr", "0.05",
             "--num-steps", "4", "--step-size", "2/255", "--eval", "natural,pgd20", "--no-progress",
             "--log-interval", "1000", "--no-download"]


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> tuple[dict, Path]:
    """(its results, its folder). Under pytest-xdist the first worker to ask trains it, in the folder the
    workers share, and the others wait for it and read it."""
    import json

    from filelock import FileLock
    if not SHARED_ZIP.exists():
        pytest.skip("the shared CIFAR-10 zip is not there")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, failed = shared / "real", shared / "real.failed"
    with FileLock(str(shared / "real.lock")):
        if failed.exists():
            pytest.fail(f"the real-data run failed in another worker: {failed.read_text()}")
        if not (out / "results.json").exists():
            try:
                run(get_args("part", ["--data-dir", str(SHARED_ZIP), "--model-dir", str(out), *REAL_ARGS]))
            except BaseException as exc:
                failed.write_text(repr(exc))
                raise
    return json.loads((out / "results.json").read_text()), out


@pytest.fixture(scope="session")
def real_at_model(real_run):
    import torch

    from models.zoo import build_model
    from runner.data.sources import load_splits
    from runner.infra.checkpoint import load_checkpoint

    results, out = real_run
    model = build_model(REAL_MODEL, 10)
    model.load_state_dict(load_checkpoint(out / f"epoch{REAL_EPOCHS}.pt", torch.device("cpu"))["model"])
    _, test = load_splits("CIFAR10", SHARED_ZIP, False, 1, 500)
    x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
    return model.eval(), x, torch.from_numpy(test.labels)


@pytest.fixture(scope="session")
def tiny_folder64(tmp_path_factory) -> Path:
    """Layout (b) of TinyImageNet: 200 WordNet-id class folders, 64x64 images (one a class to train on)."""
    splits = {"train": synthetic_split(200, 3, size=64, classes=200),
              "test": synthetic_split(20, 4, size=64, classes=200)}
    return write_image_tree(tmp_path_factory.mktemp("folder64"), splits, TINY_CLASSES)


@pytest.fixture(scope="session")
def tiny_svhn_folder(tmp_path_factory, tiny_splits) -> Path:
    """Layout (b) of SVHN: class folders 0 ... 9."""
    return write_image_tree(tmp_path_factory.mktemp("svhn_folder"), tiny_splits, SVHN_CLASSES)


@pytest.fixture(scope="session")
def tiny_svhn_zip(tmp_path_factory, tiny_svhn_folder) -> Path:
    return zip_tree(tiny_svhn_folder, tmp_path_factory.mktemp("svhn_zip") / "svhn-tiny.zip", "svhn")


@pytest.fixture(scope="session")
def tiny_zip64(tmp_path_factory, tiny_folder64) -> Path:
    return zip_tree(tiny_folder64, tmp_path_factory.mktemp("zip64") / "tiny-imagenet-small.zip", "tiny")


@pytest.fixture(scope="session")
def tiny_svhn(tmp_path_factory, tiny_splits) -> Path:
    """torchvision's SVHN layout: train_32x32.mat / test_32x32.mat with X (H, W, C, N), y in 1..10."""
    from scipy.io import savemat
    root = tmp_path_factory.mktemp("svhn")
    for split, (images, labels) in tiny_splits.items():
        y = np.where(labels == 0, 10, labels)[:, None].astype(np.uint8)
        savemat(root / f"{split}_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": y})
    return root


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory) -> Path:
    """The standard tiny-imagenet-200/ layout: 200 WordNet ids, 64x64 JPEGs of the first 3 classes."""
    root = tmp_path_factory.mktemp("tiny")
    base = root / "tiny-imagenet-200"
    wnids = TINY_CLASSES
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")     # sorted when read
    images, labels = synthetic_split(24, 2, size=64)
    rows = []
    for i, (img, lab) in enumerate(zip(images, labels % 3)):
        if i < 15:
            folder = base / "train" / wnids[lab] / "images"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{wnids[lab]}_{i}.JPEG")
        else:
            Image.fromarray(img).save(base / "val" / "images" / f"val_{i}.JPEG")
            rows.append(f"val_{i}.JPEG\t{wnids[lab]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    return root
