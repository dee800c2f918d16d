"""PART-T, PART-M, the baselines, SVHN / TinyImageNet, the region rule and the grad-cam backend."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attacks.common import no_start, normal_start
from cam.maps import compute_cam, minmax_normalise
from cam.rules import epsilon_map, region_map
from models.zoo import cam_layer
from part import VARIANTS as REGISTRY
from part import PartSettings
from part.step import BASE_METHODS, attack_start
from tests.conftest import REPO, TINY_CLASSES, train, trained_a_little
from tests.helpers.compare import same, weights
from runner.cli.args import get_args
from runner.data.sources import load_splits

METHOD_LOSS = {key: m.base_key for key, m in REGISTRY.items()}     # part -> at, part_t -> trades, ...

VARIANTS = list(REGISTRY)


# Every dataset trains end to end once, each with another script; that every layout of a dataset
# loads the same images is the data tests' job (tests/runner/test_data.py).
DATASET_RUNS = [("CIFAR10", "tiny_folder", "part"), ("SVHN", "tiny_svhn", "part_t"),
                ("TinyImagenet", "tiny_imagenet", "part_m")]


@pytest.mark.parametrize("data,root,method", DATASET_RUNS)
def test_every_dataset_trains_with_a_script(data, root, method, request, trust_fake_files, tmp_path):
    folder = request.getfixturevalue(root)
    res = train(folder, tmp_path, "--data", data, "--batch-size", "32", "--eval", "natural,pgd20", method=method)
    _, test = load_splits(data, folder, download=False)
    assert res["epochs_done"] == 2 and res["history"][1]["phase"] == "part"
    assert res["test_images"] == len(test) and res["pgd20"] is not None


def test_rand_init(tiny_folder, tmp_path):
    """--rand_init false starts the PGD / MMA training attacks at x; TRADES and MART start at
    x + 0.001 N(0, 1) whatever it says, as upstream, so their runs equal the default ones."""
    for method in VARIANTS:
        common = ("--augmentation", "none", "--eval", "natural")
        a = train(tiny_folder, tmp_path / f"{method}-a", "--rand_init", "false", *common, method=method)
        train(tiny_folder, tmp_path / f"{method}-c", *common, method=method)
        assert a["args"]["rand_init"] is False
        like_default = same(weights(tmp_path / f"{method}-a" / "epoch2.pt"),
                             weights(tmp_path / f"{method}-c" / "epoch2.pt"))
        assert like_default == (method != "part")
    starts = {(m, p): attack_start(PartSettings.from_args(get_args(m, ["--rand_init", "false"])),
                                   BASE_METHODS[METHOD_LOSS[m]], p)
              for m in VARIANTS for p in (False, True)}
    assert starts == {("part", False): no_start, ("part", True): no_start, ("part_t", False): normal_start,
                      ("part_t", True): normal_start, ("part_m", False): normal_start, ("part_m", True): normal_start}


def test_tiny_imagenet_native_layout(tiny_imagenet):
    train_split, test_split = load_splits("TinyImagenet", tiny_imagenet, download=False)
    assert train_split.images.shape == (15, 64, 64, 3) and test_split.images.shape == (9, 64, 64, 3)
    assert train_split.classes == TINY_CLASSES and set(train_split.labels.tolist()) == {0, 1, 2}
    assert set(test_split.labels.tolist()) == {0, 1, 2}


def test_svhn_labels_and_official_overrides(tiny_svhn, trust_fake_files, tiny_splits):
    train_split, _ = load_splits("SVHN", tiny_svhn, download=False)
    assert np.array_equal(train_split.labels, tiny_splits["train"][1])     # label 10 means digit 0
    assert np.array_equal(train_split.images, tiny_splits["train"][0])
    args = get_args("part", ["--data", "SVHN"])
    assert (args.step_size, args.weight_decay, args.lr, args.batch_size) == (1 / 255, 0.0035, 0.01, 128)
    assert args.augmentation == "none" and "--step-size" in args.dataset_overrides
    args = get_args("part", ["--data", "SVHN", "--step-size", "2/255", "--wd=1e-3", "--augmentation", "crop-flip"])
    assert args.step_size == 2 / 255 and args.weight_decay == 1e-3 and args.augmentation == "crop-flip"
    assert set(args.dataset_overrides) == {"--lr", "--batch-size"}
    assert get_args("part", []).augmentation == "crop-flip"


@pytest.mark.parametrize("method", VARIANTS)
def test_no_reweight_equals_equal_budgets(method, tiny_folder, tmp_path):
    """PART with ε_low = ε is its base method. For AT bit for bit (both project with the clamp form);
    TRADES and MART project a float budget with the official min/max form and PART-T / PART-M's map
    with element_wise_clamp, as upstream, so there they agree to the rounding of the projection (on the
    small CNN: BatchNorm would carry that rounding further than the tolerance)."""
    train(tiny_folder, tmp_path / "a", "--no-reweight", "--eval", "natural", "--model", "smallcnn", method=method)
    res = train(tiny_folder, tmp_path / "b", "--low-epsilon", "8/255", "--clip-part-start", "--eval", "natural",
                "--model", "smallcnn", method=method)
    a, b = weights(tmp_path / "a" / "epoch2.pt"), weights(tmp_path / "b" / "epoch2.pt")
    if method == "part":
        assert same(a, b)
    else:
        assert all(torch.allclose(a[k].double(), b[k].double(), rtol=1e-4, atol=1e-6) for k in a)
    assert res["method"] == REGISTRY[method].name


@pytest.mark.parametrize("method", ["part_t", "part_m"])
def test_reweighting_changes_trades_and_mart(method, tiny_folder, tmp_path):
    """PART-T / PART-M at two ε_low: both project through the map (so the projection's rounding, which
    alone tells ε_low = ε from the baseline, is the same in both); only the budget differs."""
    train(tiny_folder, tmp_path / "a", "--low-epsilon", "8/255", "--eval", "natural", method=method)
    train(tiny_folder, tmp_path / "b", "--low-epsilon", "1/255", "--eval", "natural", method=method)
    assert not same(weights(tmp_path / "a" / "epoch2.pt"), weights(tmp_path / "b" / "epoch2.pt"))


def test_region_map_and_training(tiny_folder, tmp_path):
    m = region_map(32, {"ul": 6 / 255, "br": 12 / 255}, 8 / 255)
    assert m.shape == (1, 3, 32, 32)
    assert m[0, 0, 0, 0] == torch.tensor(6 / 255) and m[0, 2, 31, 31] == torch.tensor(12 / 255)
    assert m[0, 1, 0, 31] == torch.tensor(8 / 255) and m[0, 1, 31, 0] == torch.tensor(8 / 255)
    res = train(tiny_folder, tmp_path / "r", "--mask-rule", "region", "--warm-up", "0",
                "--region-eps", "ul=6/255,ur=12/255,bl=12/255,br=12/255")
    assert res["method"] == "AT-region" and [r["phase"] for r in res["history"]] == ["part", "part"]
    # Every quadrant at epsilon is plain AT, weight for weight.
    train(tiny_folder, tmp_path / "q", "--mask-rule", "region", "--region-eps", "ul=8/255,br=8/255",
          "--clip-part-start", "--eval", "natural")
    train(tiny_folder, tmp_path / "a", "--no-reweight", "--eval", "natural")
    assert same(weights(tmp_path / "q" / "epoch2.pt"), weights(tmp_path / "a" / "epoch2.pt"))


def test_region_flag_needs_region_rule():
    out = subprocess.run([sys.executable, "train_eval_part.py", "--region-eps", "ul=6/255"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--mask-rule region" in out.stderr


def test_backend_gradcam_agrees_with_native():
    model = trained_a_little("resnet")
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    native = compute_cam(model, x, "gradcam")
    up = minmax_normalise(F.interpolate(native[:, None], size=(32, 32), mode="bilinear",
                                        align_corners=False)[:, 0])
    lib = compute_cam(model, x, "lib-gradcam")
    assert lib.shape == (4, 32, 32) and (lib.flatten(1).max(1).values > 0).all()
    assert torch.allclose(up, lib, atol=1e-4)


# EigenCAM is the first principal component of the activations: the one method here blind to the class.
@pytest.mark.parametrize("method", ["gradcam++", "eigencam", "scorecam", "ablationcam", "hirescam", "fullgrad"])
def test_backend_methods_batched_and_clean(method, capfd):
    model = trained_a_little("smallcnn").train()
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32)
    cam = compute_cam(model, x, method)
    assert cam.shape == (3, 32, 32) and cam.min() >= 0 and cam.max() <= 1
    assert (cam.flatten(1).max(1).values > 0).all()      # a map with content for every image
    assert model.training and not cam_layer(model)._forward_hooks
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        other = (model.eval()(x).argmax(1) + 1) % 10
    model.train()
    by_class = compute_cam(model, x, method, targets=other)
    assert torch.allclose(cam, by_class, atol=1e-4) == (method == "eigencam")
    eps = epsilon_map(PartSettings.from_args(get_args("part", ["--mask-rule", "official"])), cam, x)
    assert eps.shape == (3, 3, 32, 32)
    assert "it/s" not in capfd.readouterr().err          # no progress bars from the package


@pytest.mark.parametrize("script,flag", [("train_eval_part_t.py", "--beta"), ("train_eval_part_m.py", "--beta"),
                                         ("train_eval_part.py", "--attack")])
def test_each_help_lists_defaults(script, flag):
    out = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and flag in text and "(default: 80)" in text and "(default: 20)" in text
