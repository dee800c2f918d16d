"""The trainer: PART with epsilon_low == epsilon is plain AT, exact resume, schedule, outputs."""
import json

import pytest
import torch

from tests.conftest import train
from tests.helpers.compare import same, weights
from runner.cli.args import get_args
from runner.infra.checkpoint import load_checkpoint
from common.errors import UserError
from part import PartSettings
from part.step import lr_at

CPU = torch.device("cpu")


@pytest.mark.parametrize("refresh", ["official"])        # batch masks: test_variants' ε_low = ε test
def test_equal_budgets_give_plain_at(tiny_folder, tmp_path, refresh):
    """PART with epsilon_low == epsilon differs from AT only in the start clipping of upstream's
    part_pgd; with that aligned (--clip-part-start) it is AT, weight for weight, also with the
    official pairing's masks."""
    train(tiny_folder, tmp_path / "at", "--warm-up", "2", "--eval", "natural")
    train(tiny_folder, tmp_path / "part", "--low-epsilon", "8/255", "--cam-refresh", refresh,
          "--clip-part-start", "--eval", "natural")
    assert same(weights(tmp_path / "at" / "epoch2.pt"), weights(tmp_path / "part" / "epoch2.pt"))
    train(tiny_folder, tmp_path / "official", "--low-epsilon", "8/255", "--cam-refresh", refresh,
          "--eval", "natural")
    assert not same(weights(tmp_path / "at" / "epoch2.pt"), weights(tmp_path / "official" / "epoch2.pt"))


def test_reweighting_changes_the_weights(tiny_folder, tmp_path):
    """With the start clipped as the warm-up's, PART at ε_low = ε is AT weight for weight; the same run at
    a lower ε_low is not: the budget map alone makes the difference."""
    clipped = ("--clip-part-start", "--eval", "natural")
    train(tiny_folder, tmp_path / "at", "--no-reweight", "--eval", "natural")
    train(tiny_folder, tmp_path / "flat", "--low-epsilon", "8/255", *clipped)
    train(tiny_folder, tmp_path / "part", "--low-epsilon", "2/255", *clipped)
    assert same(weights(tmp_path / "at" / "epoch2.pt"), weights(tmp_path / "flat" / "epoch2.pt"))
    assert not same(weights(tmp_path / "flat" / "epoch2.pt"), weights(tmp_path / "part" / "epoch2.pt"))


def test_resume_is_bit_exact(tiny_folder, tmp_path):
    """2 epochs straight == 1 epoch + --resume + 1 epoch (warm-up, then a PART epoch). The official
    pairing's epoch-boundary resume (its masks carried): test_preemption; mid-epoch resumes: there too."""
    common = ("--warm-up", "1", "--save-freq", "1", "--eval", "natural")
    straight = train(tiny_folder, tmp_path / "a", "--epochs", "2", *common)
    train(tiny_folder, tmp_path / "b", "--epochs", "1", *common)
    resumed = train(tiny_folder, tmp_path / "c", "--epochs", "2", *common,
                    "--resume", str(tmp_path / "b" / "epoch1.pt"))
    assert same(weights(tmp_path / "a" / "epoch2.pt"), weights(tmp_path / "c" / "epoch2.pt"))
    a = load_checkpoint(tmp_path / "a" / "epoch2.pt", CPU)["optimizer"]["state"]
    c = load_checkpoint(tmp_path / "c" / "epoch2.pt", CPU)["optimizer"]["state"]
    assert all(torch.equal(a[k]["momentum_buffer"], c[k]["momentum_buffer"]) for k in a)
    assert [r["loss"] for r in straight["history"]] == [r["loss"] for r in resumed["history"]]
    assert resumed["natural"] == straight["natural"]


def test_learning_rate_schedule_counts_after_warm_up():
    args = PartSettings.from_args(get_args("part", []))
    lrs = [lr_at(args, e) for e in range(1, 81)]
    assert lrs[:79] == [0.01] * 79 and lrs[79] == pytest.approx(0.001)
    args = PartSettings.from_args(get_args("part", ["--epochs", "120", "--adjust-first", "30", "--adjust-second",
                                                    "40"]))
    assert lr_at(args, 49) == 0.01 and lr_at(args, 50) == pytest.approx(0.001)
    assert lr_at(args, 60) == pytest.approx(0.0001)


def test_outputs_checkpoints_and_results(tiny_zip, tmp_path, capsys):
    res = train(tiny_zip, tmp_path / "m", "--epochs", "3", "--save-freq", "2",
                "--results", str(tmp_path / "r.json"))
    # One log row per epoch, with the values the results' history keeps.
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(rows) == 3
    for row, h, label in zip(rows, res["history"], ("AT warm-up", "reweighted", "reweighted")):
        assert row.startswith(f"epoch {h['epoch']}/3 | {label} | loss {h['loss']:.4f} | lr {h['lr']:.5f} | ")
        assert ("full budget on" in row) == (label == "reweighted")
        if label == "reweighted":
            assert f"full budget on {100 * h['full_budget_fraction']:.1f}% of elements" in row
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["epoch2.pt", "epoch3.pt", "run.json"]
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["method"] == "PART" and saved["epochs_done"] == 3
    assert saved["args"]["mask_rule"] == "official" and saved["args"]["cam_refresh"] == "batch"
    assert [r["phase"] for r in saved["history"]] == ["warm-up", "part", "part"]
    assert {"loss", "lr", "seconds"} <= saved["history"][0].keys()
    assert saved["natural"] == res["natural"] and saved["pgd20"] == res["pgd20"]
    assert {"train_warm-up", "train_part", "eval_natural", "eval_pgd20"} <= saved["seconds"].keys()
    assert saved["mma"] is None and saved["aa"] is None


def test_eval_only_reproduces_and_runs_other_evaluations(tiny_folder, tmp_path):
    """(AutoAttack through --eval-only: tests/runner/test_distributed.py; on tiny data its Square attack
    alone took 14 s here.)"""
    first = train(tiny_folder, tmp_path / "m", "--eval", "natural,pgd20")
    again = train(tiny_folder, tmp_path / "e", "--eval-only", str(tmp_path / "m" / "epoch2.pt"),
                  "--eval", "natural,pgd20,mma", "--test-subset", "8")
    assert again["history"] == [] and again["epochs_done"] == 2
    assert again["test_images"] == 8
    assert set(again["counts"]) == {"natural", "pgd20", "mma"}
    same = train(tiny_folder, tmp_path / "f", "--eval-only", str(tmp_path / "m" / "epoch2.pt"),
                 "--eval", "natural,pgd20")
    assert same["counts"] == first["counts"] and same["pgd20"] == first["pgd20"]


@pytest.fixture(scope="module")
def default_weights(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    train(tiny_folder, out, "--eval", "natural")
    return weights(out / "epoch2.pt")


@pytest.mark.parametrize("flags", [("--attack", "mma"), ("--cam", "layercam"), ("--mask-rule", "cam"),
                                   ("--cam", "lib-gradcam")])
def test_each_training_choice_changes_the_training(flags, default_weights, tiny_folder, tmp_path):
    """A training attack, CAM or mask rule that were ignored would give the default run's weights."""
    res = train(tiny_folder, tmp_path, *flags, "--eval", "natural")
    assert res["history"][1]["phase"] == "part"
    assert not same(default_weights, weights(tmp_path / "epoch2.pt"))


def test_resident_loader_trains_like_the_cpu_path(tiny_folder, tmp_path):
    """Without augmentation both loaders feed the same batches, so the weights agree exactly."""
    train(tiny_folder, tmp_path / "t", "--augmentation", "none", "--eval", "natural")
    r = train(tiny_folder, tmp_path / "r", "--augmentation", "none", "--loader", "resident", "--eval", "natural")
    assert r["args"]["loader"] == "resident"           # not resolved to the torch loader: two paths compared
    assert same(weights(tmp_path / "t" / "epoch2.pt"), weights(tmp_path / "r" / "epoch2.pt"))
    res = train(tiny_folder, tmp_path / "a", "--loader", "resident", "--cam-refresh", "official", "--eval", "natural")
    assert res["epochs_done"] == 2 and res["args"]["loader"] == "resident"


def test_eval_only_needs_only_the_test_images(tiny_folder, tiny_splits, tmp_path):
    """The second-lease workflow: weights plus a zip of the test tree alone."""
    import zipfile
    train(tiny_folder, tmp_path / "m", "--eval", "natural")
    test_zip = tmp_path / "cifar10-test.zip"
    with zipfile.ZipFile(test_zip, "w") as zf:
        for f in sorted((tiny_folder / "test").rglob("*.png")):
            zf.write(f, "cifar10/" + f.relative_to(tiny_folder).as_posix())
    full = train(tiny_folder, tmp_path / "a", "--eval-only", str(tmp_path / "m" / "epoch2.pt"), "--eval", "natural")
    only = train(test_zip, tmp_path / "b", "--eval-only", str(tmp_path / "m" / "epoch2.pt"), "--eval", "natural")
    assert only["test_images"] == len(tiny_splits["test"][1]) and only["natural"] == full["natural"]
    with pytest.raises(UserError, match="train/<class>/ \\+ test/<class>/"):
        train(test_zip, tmp_path / "c", "--eval", "natural")


def _recording(monkeypatch, owner, name, x_of):
    """Record the x of every call of owner.name (`x_of(args)` picks it) and what it returned."""
    seen = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append((x_of(args).clone(), out))
        return out
    monkeypatch.setattr(owner, name, spy)
    return seen


def _part_batches(monkeypatch):
    """(x, ε map) of every batch of the PART phase, as the trainer gives them to part.step.train_batch."""
    import runner.training.trainer
    seen = []
    real = runner.training.trainer.train_batch

    def spy(phase, model, x, *args, **kwargs):
        loss, eps = real(phase, model, x, *args, **kwargs)
        if phase.name == "part":
            seen.append((x.clone(), eps))
        return loss, eps
    monkeypatch.setattr(runner.training.trainer, "train_batch", spy)
    return seen


def test_full_budget_fraction_is_the_share_of_full_budget_elements(tiny_folder, tmp_path, monkeypatch):
    budgets = _part_batches(monkeypatch)
    res = train(tiny_folder, tmp_path, "--epochs", "3", "--eval", "natural", "--mask-rule", "cam")
    assert len(budgets) == 2 * 3                        # 2 PART epochs of 80 / 32 -> 3 batches
    for epoch, rows in ((2, budgets[:3]), (3, budgets[3:])):
        full = sum(float((eps == torch.tensor(8 / 255)).float().mean()) * len(x) for x, eps in rows)
        expected = full / sum(len(x) for x, _ in rows)
        assert 0 < expected < 1
        assert res["history"][epoch - 1]["full_budget_fraction"] == pytest.approx(expected, abs=1e-9)


def test_official_pairing_masks_come_from_another_shuffle(tiny_folder, tmp_path, monkeypatch):
    """--cam-refresh official: the masks are CAMs of a separate pass in another order, so the mask of
    batch i belongs to other images; --cam-refresh batch: the CAM of the batch itself."""
    import part.step
    from cam.rules import budget_from
    from runner.training.pairing import OfficialPairing
    cams = _recording(monkeypatch, OfficialPairing, "kept", lambda args: args[1])     # (self, x, y)
    batch_maps = _recording(monkeypatch, part.step, "importance_map", lambda args: args[2])  # (name, model, x, ...)
    batches = _part_batches(monkeypatch)
    train(tiny_folder, tmp_path / "o", "--augmentation", "none", "--cam-refresh", "official", "--eval", "natural")
    assert len(cams) == len(batches) == 3 and batch_maps == []
    for (mask_x, mask), (batch_x, eps) in zip(cams, batches):
        assert mask_x.shape == batch_x.shape and not torch.equal(mask_x, batch_x)
        assert torch.equal(eps, budget_from(mask, 8 / 255, 7 / 255))     # batch i gets the pass's mask i
    # The same images, in another order.
    flat = lambda rows: sorted(tuple(img.flatten()[:8].tolist()) for x, _ in rows for img in x)  # noqa: E731
    assert flat(cams) == flat(batches)
    cams.clear()
    batches.clear()
    train(tiny_folder, tmp_path / "b", "--augmentation", "none", "--eval", "natural")
    assert cams == [] and len(batch_maps) == len(batches) == 3
    assert all(torch.equal(c, b) for (c, _), (b, _) in zip(batch_maps, batches))


def test_prepare_leaves_the_arguments_as_given(tiny_folder, tmp_path):
    """--loader auto is resolved by the trainer, not written back into the args (which go into every
    checkpoint); the results record the loader used."""
    from runner.training.run import prepare
    args = get_args("part", ["--model", "smallcnn", "--data-dir", str(tiny_folder), "--no-download"])
    before = dict(vars(args))
    trainer, *_ = prepare(args)
    assert vars(args) == before and args.loader == "auto" and trainer.loader_kind == "torch"
    res = train(tiny_folder, tmp_path, "--epochs", "1", "--warm-up", "1", "--eval", "natural")
    assert res["args"]["loader"] == "torch"
    assert torch.load(tmp_path / "epoch1.pt", weights_only=False)["args"]["loader"] == "auto"
