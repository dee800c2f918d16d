"""The layouts of each dataset, subsets and the training augmentation."""
import numpy as np
import pytest
import torch
import torchvision

from tests.conftest import CLASSES, SVHN_CLASSES, TINY_CLASSES
from runner.data.loaders import ArraySplit, train_augmentation
from runner.data.sources import load_splits
from common.errors import UserError


def _same_multiset(split, images, labels) -> None:
    """Folder and zip sort by class, then name; compare as (label, image) multisets."""
    order = np.lexsort((np.arange(len(labels)), labels))
    got = np.lexsort((np.arange(len(split.labels)), split.labels))
    assert np.array_equal(split.labels[got], labels[order])
    flat = split.images.reshape(len(labels), -1)
    assert np.array_equal(np.sort(flat, 0), np.sort(images.reshape(len(labels), -1), 0))


@pytest.mark.parametrize("data,roots,classes", [
    ("CIFAR10", ("tiny_folder", "tiny_zip", "tiny_cifar_batches"), CLASSES),
    ("SVHN", ("tiny_svhn", "tiny_svhn_folder", "tiny_svhn_zip"), SVHN_CLASSES),
])
def test_every_layout_loads_the_same_images(data, roots, classes, tiny_splits, trust_fake_files, request):
    for root in roots:
        train, test = load_splits(data, request.getfixturevalue(root), download=False)
        assert train.classes == classes, root
        for split, (images, labels) in ((train, tiny_splits["train"]), (test, tiny_splits["test"])):
            _same_multiset(split, images, labels)


def test_tiny_imagenet_folder_and_zip_agree(tiny_folder64, tiny_zip64):
    (a_train, a_test), (b_train, b_test) = (load_splits("TinyImagenet", r, download=False)
                                            for r in (tiny_folder64, tiny_zip64))
    assert a_train.classes == b_train.classes == TINY_CLASSES and a_train.images.shape == (200, 64, 64, 3)
    for a, b in ((a_train, b_train), (a_test, b_test)):
        _same_multiset(a, b.images, b.labels)


def test_folder_under_cifar10_and_zip_in_directory(tmp_path, tiny_folder, tiny_zip):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "CIFAR10").symlink_to(tiny_folder, target_is_directory=True)
    assert len(load_splits("CIFAR10", tmp_path / "a", download=False)[0]) == 80
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cifar10-jpeg.zip").symlink_to(tiny_zip)
    assert len(load_splits("CIFAR10", tmp_path / "b", download=False)[1]) == 40


def test_subsets_are_fixed_and_decode_only_what_is_kept(tiny_zip):
    a, b = load_splits("CIFAR10", tiny_zip, False, 20, 7), load_splits("CIFAR10", tiny_zip, False, 20, 7)
    assert len(a[0]) == 20 and len(a[1]) == 7
    assert np.array_equal(a[0].images, b[0].images) and len(set(a[0].labels.tolist())) > 3


def test_missing_data_names_the_layouts(tmp_path):
    with pytest.raises(UserError, match="cifar-10-batches-py.*train/<class>.*zip"):
        load_splits("CIFAR10", tmp_path, download=False)


def test_failed_download_is_a_user_error(tmp_path, monkeypatch):
    def offline(*_a, **_k):
        raise OSError("Name or service not known")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(UserError, match="no CIFAR10 data found"):
        load_splits("CIFAR10", tmp_path / "fresh", download=True)


def test_augmentation_keeps_labels_range_and_shape(tiny_splits):
    from runner.data.split import Split
    images, labels = tiny_splits["train"]
    ds = ArraySplit(Split(images, labels, CLASSES), train_augmentation(32))
    torch.manual_seed(0)
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    assert xs.shape == (80, 3, 32, 32) and xs.dtype == torch.float32
    assert xs.min() >= 0 and xs.max() <= 1
    assert [int(ds[i][1]) for i in range(5)] == labels[:5].tolist()
    # Zero padding shows up: some crops bring in black borders.
    assert (xs == 0).any()
    plain = ArraySplit(Split(images, labels, CLASSES))
    assert torch.equal(plain[3][0], torch.from_numpy(images[3]).permute(2, 0, 1).float() / 255)


def test_resident_loader_matches_the_cpu_path_without_augmentation(tiny_splits):
    from runner.data.loaders import ResidentLoader, make_loader
    from runner.data.split import Split
    images, labels = tiny_splits["train"]
    split = Split(images, labels, CLASSES)
    resident = list(ResidentLoader(split, 16, 123, False, "cpu"))
    reference = list(make_loader(ArraySplit(split), 16, 123))
    assert len(resident) == len(reference) == 5
    for (xa, ya), (xb, yb) in zip(resident, reference):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_resident_loader_scales_every_byte_as_to_tensor():
    """All 256 byte values become ToTensor's float (x / 255 rounded once), not x * (1/255), which is
    1 ulp off for 126 of them: the product CUDA computes for a division by a scalar."""
    from torchvision.transforms.functional import to_tensor
    from runner.data.loaders import ResidentLoader
    from runner.data.split import Split
    images = np.arange(256 * 3, dtype=np.int64).reshape(1, 16, 16, 3).astype(np.uint8)
    (x, _), = ResidentLoader(Split(images, np.zeros(1, dtype=np.int64), CLASSES), 1, None, False, "cpu")
    assert torch.equal(x[0], to_tensor(images[0]))


def test_resident_augmentation_keeps_labels_aligned():
    from runner.data.loaders import ResidentLoader
    from runner.data.split import Split
    labels = np.arange(40) % 10
    images = np.broadcast_to((labels + 1)[:, None, None, None] * 20, (40, 32, 32, 3)).astype(np.uint8)
    torch.manual_seed(0)
    for x, y in ResidentLoader(Split(images, labels, CLASSES), 16, 5, True, "cpu"):
        assert x.min() >= 0 and x.max() <= 1 and x.shape[1:] == (3, 32, 32)
        for xi, yi in zip(x, y):
            values = torch.unique((xi * 255).round())
            assert set(values.tolist()) <= {0.0, float((int(yi) + 1) * 20)}


def test_crop_flip_follows_the_official_distribution():
    from runner.data.loaders import crop_flip
    n = 9000
    rows = torch.arange(1, 33, dtype=torch.uint8)[:, None].expand(32, 32)
    cols = torch.arange(1, 33, dtype=torch.uint8)[None, :].expand(32, 32)
    img = torch.stack([rows, cols])[None].expand(n, 2, 32, 32)
    torch.manual_seed(0)
    out = crop_flip(img, 4).long()
    oy = out[:, 0, 16, 16] - 13
    flipped = out[:, 1, 16, 17] < out[:, 1, 16, 16]
    ox = torch.where(flipped, out[:, 1, 16, 16] - 12, out[:, 1, 16, 16] - 13)
    for offsets in (oy, ox):
        counts = torch.bincount(offsets, minlength=9).double()
        assert offsets.min() == 0 and offsets.max() == 8 and len(counts) == 9
        chi2 = float(((counts - n / 9) ** 2 / (n / 9)).sum())
        assert chi2 < 26.1          # chi-square, 8 degrees of freedom, p = 0.001
    assert abs(flipped.double().mean().item() - 0.5) < 0.02
    # Zero padding appears where the crop leaves the image.
    assert torch.all(out[oy == 0, 0, 0, :] == 0)


def test_one_class_list_when_a_split_misses_a_class(tmp_path, tiny_folder):
    import shutil
    for layout in ("folder", "zip"):
        root = tmp_path / layout
        shutil.copytree(tiny_folder, root)
        shutil.rmtree(root / "test" / "airplane")
        if layout == "zip":
            from tests.conftest import zip_tree
            root = zip_tree(root, tmp_path / "cifar10-x.zip", "cifar10")
        train, test = load_splits("CIFAR10", root, download=False)
        assert train.classes == test.classes == CLASSES
        assert 0 not in test.labels.tolist() and set(test.labels.tolist()) == set(range(1, 10))


def _tree(root, names, size=32, per_class=1):
    """An image-folder tree with the given class folder names and square images of `size`."""
    from PIL import Image
    for split in ("train", "test"):
        for c in names:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (size, size), (i, 0, 0)).save(root / split / c / f"{i}.png")
    return root


@pytest.mark.parametrize("data,names,size,needle", [
    # SVHN asked for, CIFAR-10 folders: a mistake that once trained silently.
    ("SVHN", CLASSES, 32, "class folders airplane, automobile, bird, cat, deer .* --data SVHN does not have"),
    ("TinyImagenet", CLASSES, 64, "has 10 class folders .* --data TinyImagenet has 200 classes"),
    ("CIFAR10", [str(d) for d in range(10)], 32, "class folders 0, 1, 2, 3, 4 ... that --data CIFAR10"),
    ("CIFAR10", CLASSES[:9], 32, "has 9 class folders"),
    ("CIFAR10", CLASSES, 64, "is 64x64, but --data CIFAR10 has 32x32 images"),
])
@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_tree_must_hold_the_dataset_of_data(tmp_path, data, names, size, needle, layout):
    from tests.conftest import zip_tree
    root = _tree(tmp_path / "tree", names, size)
    if layout == "zip":
        root = zip_tree(root, tmp_path / "images.zip", "images")
    with pytest.raises(UserError, match=needle):
        load_splits(data, root, download=False)


def test_tiny_imagenet_tree_needs_wordnet_ids(tmp_path):
    with pytest.raises(UserError, match="not WordNet ids"):
        load_splits("TinyImagenet", _tree(tmp_path, [f"c{i:03d}" for i in range(200)], 64, per_class=0), False)


def test_class_folders_without_images(tmp_path):
    root = _tree(tmp_path / "tree", CLASSES, per_class=0)
    with pytest.raises(UserError, match=r"has no images in its train/<class>/ folders"):
        load_splits("CIFAR10", root, download=False)
    with pytest.raises(UserError, match=r"has no images in its test/<class>/ folders"):
        load_splits("CIFAR10", root, download=False, need_train=False)


def test_shared_zip_with_the_wrong_data_is_refused_before_decoding(tmp_path, capsys):
    """The same mistake on the real data: one line, exit 2, no model folder, in well under a second of decoding."""
    import time

    from tests.conftest import SHARED_ZIP
    from runner.main import main
    if not SHARED_ZIP.exists():
        pytest.skip("the shared CIFAR-10 zip is not there")
    t0 = time.perf_counter()
    assert main("part", ["--data", "SVHN", "--data-dir", str(SHARED_ZIP), "--model-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data SVHN does not have" in err and "cifar10/" in err
    assert not (tmp_path / "m").exists() and time.perf_counter() - t0 < 30
