"""The dataset axis (runner/data/datasets.py): a dataset is one entry; one whose images carry an object box
hands each training batch its boxes, which the `box` map reads."""
import numpy as np
import pytest
import torch

from cam.rules import budget_from
from runner.cli.args import get_args
from runner.data.datasets import DATASETS, Dataset
from runner.data.split import Split


def _boxed(n: int, seed: int) -> Split:
    """n random 32x32 images, each with a 16x16 box (a quarter of its pixels) at a random place."""
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, 17, n), rng.integers(0, 17, n)
    boxes = np.stack([top, left, top + 16, left + 16], 1).astype(np.int64)
    return Split(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64),
                 [str(c) for c in range(10)], extras={"box": boxes})


def boxes_native(root, limits):
    return tuple(_boxed(n or default, seed).subset(n) for n, default, seed in zip(limits, (64, 32), (1, 2)))


BOXES = Dataset("Boxes", 10, 32, ("boxes",), "generated in the test", native=boxes_native, augmentation="none",
                extras=("box",))


@pytest.fixture
def boxes_dataset(monkeypatch):
    monkeypatch.setitem(DATASETS, "Boxes", BOXES)


def test_a_dataset_with_boxes_trains_part_on_its_boxes(boxes_dataset, tmp_path, monkeypatch):
    """--map box with the top rule at the box's share: each PART batch's ε map is exactly its images'
    boxes (ε inside, ε_low outside), carried from the entry's reader through the loader to the step."""
    import runner.training.trainer as trainer
    from runner.training.run import run
    seen = []
    real = trainer.train_batch

    def spy(phase, model, x, y, optimizer, extras=None, **kw):
        loss, eps = real(phase, model, x, y, optimizer, extras, **kw)
        seen.append((phase.name, extras["box"], eps))
        return loss, eps
    monkeypatch.setattr(trainer, "train_batch", spy)
    args = get_args("part", ["--data", "Boxes", "--data-dir", str(tmp_path), "--model", "smallcnn-bn",
                             "--map", "box", "--mask-rule", "top", "--top-share", "0.25", "--epochs", "2",
                             "--warm-up", "1", "--batch-size", "16", "--num-steps", "1", "--eval", "natural",
                             "--model-dir", str(tmp_path / "run"), "--no-progress", "--threads", "1"])
    assert args.augmentation == "none"                     # the entry's: augmentation would move the boxes
    run(args)
    part = [(a, e) for name, a, e in seen if name == "part"]
    assert len(part) == 4 and all(a is not None and a.shape == (16, 4) for a, _ in part)
    for box, eps in part:
        inside = torch.zeros(16, 32, 32, dtype=torch.bool)
        for i, (t, l, b, r) in enumerate(box.tolist()):
            inside[i, t:b, l:r] = True
        assert torch.equal(eps, budget_from(inside[:, None].expand(-1, 3, -1, -1), 8 / 255, 7 / 255))


def test_a_dataset_without_boxes_refuses_the_box_map_and_one_with_boxes_refuses_crop_flip(boxes_dataset, capsys):
    with pytest.raises(SystemExit) as exc:
        get_args("part", ["--map", "box"])
    assert exc.value.code == 2 and "CIFAR10 has none" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        get_args("part", ["--data", "Boxes", "--augmentation", "crop-flip"])
    assert exc.value.code == 2 and "use --augmentation none" in capsys.readouterr().err
    assert get_args("part", ["--data", "Boxes", "--map", "box"]).cam == "box"


def test_the_box_map_reaches_the_pairing_the_mask_grids_and_cam_info(boxes_dataset, tmp_path):
    """Every pass that computes a map hands it the batch's boxes: the official pairing's mask pass, the
    mask grids and --eval cam-info (whose top share at the box's share is the box itself)."""
    from runner.training.run import run
    args = get_args("part", ["--data", "Boxes", "--data-dir", str(tmp_path), "--model", "smallcnn-bn",
                             "--map", "box", "--mask-rule", "top", "--top-share", "0.25", "--cam-refresh", "official",
                             "--save-masks", "2", "--epochs", "2", "--warm-up", "1", "--batch-size", "16",
                             "--num-steps", "1", "--eval", "natural,cam-info", "--cam-info-share", "0.25",
                             "--model-dir", str(tmp_path / "run"), "--no-progress", "--threads", "1"])
    res = run(args)
    assert (tmp_path / "run" / "masks_epoch2.png").exists()
    assert res["history"][-1]["full_budget_fraction"] == pytest.approx(0.25)
    info = res["cam-info"]
    assert 0 <= info["top"] <= 100 and info["official_share"] > 0


def test_an_image_folder_tree_carries_no_boxes(tiny_folder, monkeypatch):
    """A dataset whose entry promises boxes, found as an image-folder tree (which has none), is refused
    in one line before anything trains."""
    from runner.data.datasets import CIFAR10_CLASSES
    from runner.data.sources import load_splits
    from common.errors import UserError
    monkeypatch.setitem(DATASETS, "BoxTree", Dataset("BoxTree", 10, 32, ("boxtree",), "a tree",
                                                     class_names=CIFAR10_CLASSES, extras=("box",)))
    with pytest.raises(UserError, match="carry no box per image"):
        load_splits("BoxTree", tiny_folder)
