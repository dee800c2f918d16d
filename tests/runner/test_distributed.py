"""The three scripts under torchrun, on the CPU with gloo: tiny runs on 1 or 2 processes, and the suite's
real-data model evaluated on 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REAL_EPOCHS, REAL_MODEL, REPO, SHARED_ZIP, tiny_argv
from tests.helpers.compare import comparable, same, weights
from runner.cli.args import get_args
from runner.data.loaders import epoch_order, make_loader, rank_batches, ArraySplit
from runner.data.split import Split
from runner.infra.checkpoint import load_checkpoint
from runner.infra.interrupt import TEST_HOOK

CPU = torch.device("cpu")
# 80 images in global batches of 16 (5 steps per epoch), 3 epochs.
FLAGS = ("--batch-size", "16", "--num-steps", "1", "--epochs", "3", "--warm-up", "1", "--test-subset", "24",
         "--eval", "natural,pgd20,mma", "--save-freq", "1")


def env(**extra: str) -> dict:
    """One thread per process, as torchrun sets it, so that plain and torchrun runs compute alike; unbuffered
    output, so that each progress line reaches the test as it is written."""
    base = {k: v for k, v in os.environ.items() if k not in (TEST_HOOK, "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**base, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}


def launch(n: int, script: str, argv: list[str]) -> list[str]:
    """The torchrun command line of `script` on n processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", script, *argv]


def torchrun(n: int, script: str, argv: list[str], **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(launch(n, script, argv), cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=env(**extra_env))


def plain(method: str, argv: list[str]) -> None:
    """The script's run in this process, with one thread as torchrun's processes (a torch start saved)."""
    from runner.main import main
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(method, argv) == 0
    finally:
        torch.set_num_threads(threads)


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


@pytest.mark.parametrize("n,batch,world", [(83, 16, 2), (83, 16, 4), (80, 16, 2), (65, 16, 3)])
def test_rank_batches_are_disjoint_and_cover_each_global_batch(n, batch, world):
    order = epoch_order(n, 7)
    per_rank = [rank_batches(n, batch, 7, r, world) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1            # every rank takes every step
    global_batches = list(order.split(batch))
    if len(global_batches[-1]) < world:
        global_batches = global_batches[:-1]                 # too few images for one per rank: dropped
    for j, whole in enumerate(global_batches):
        parts = [per_rank[r][j] for r in range(world)]
        assert torch.equal(torch.cat(parts), whole) and all(len(p) > 0 for p in parts)
    one = rank_batches(n, batch, 7)
    images = torch.zeros(n, 1, 1, 3, dtype=torch.uint8).numpy()
    loader = make_loader(ArraySplit(Split(images, torch.arange(n).numpy(), ["a"])), batch, 7)
    assert [b.tolist() for b in one] == [y.tolist() for _, y in loader]   # one process: the usual batches


def test_batch_size_must_divide_among_the_processes(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(SystemExit) as exc:
        get_args("part", ["--batch-size", "126"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "--batch-size 126 (the global batch) does not divide among the 4 processes" in err
    assert get_args("part", ["--batch-size", "128"]).world_size == 4


def test_diverged_ranks_stop_the_run():
    from tests.conftest import trained_a_little
    from runner.infra.distributed import Dist
    from runner.training.trainer import same_weights_everywhere

    class TwoRanks(Dist):
        def __init__(self, other):
            super().__init__(0, 2)
            object.__setattr__(self, "other", other)

        def gather(self, obj):
            return [obj, self.other(obj)]
    model = trained_a_little("smallcnn")
    assert same_weights_everywhere(TwoRanks(lambda h: h), model, 1) == same_weights_everywhere(Dist(), model, 1)
    with pytest.raises(RuntimeError, match="weights differ after epoch 3"):
        same_weights_everywhere(TwoRanks(lambda h: "0" * 64), model, 3)


def test_one_process_under_torchrun_equals_the_plain_run(tiny_folder, tmp_path):
    """(Evaluation under torchrun: the two-rank run and the per-image seeding test below.)"""
    flags = (*FLAGS, "--eval", "natural")
    plain("part", tiny_argv(tiny_folder, tmp_path / "plain", *flags))
    b = torchrun(1, "train_eval_part.py", tiny_argv(tiny_folder, tmp_path / "torchrun", *flags))
    assert b.returncode == 0, b.stderr
    assert same(weights(tmp_path / "plain" / "epoch3.pt"), weights(tmp_path / "torchrun" / "epoch3.pt"))
    assert comparable(results(tmp_path / "plain")) == comparable(results(tmp_path / "torchrun"))


@pytest.fixture(scope="module")
def two_ranks(tiny_folder, tmp_path_factory):
    """An uninterrupted 2-process PART-T run (official mask pairing: per-rank masks) of the BatchNorm CNN
    with --sync-bn (batch statistics over both ranks' images)."""
    out = tmp_path_factory.mktemp("two")
    argv = tiny_argv(tiny_folder, out, *FLAGS, "--cam-refresh", "official", "--model", "smallcnn-bn", "--sync-bn",
                     "--log-interval", "1")      # a line per batch: the SIGTERM test below signals mid-epoch
    done = torchrun(2, "train_eval_part_t.py", argv)
    assert done.returncode == 0, done.stderr
    return out, argv, done


def test_two_ranks_train_identically_and_evaluate_like_one_process(two_ranks, tiny_folder, tmp_path):
    out, argv, done = two_ranks
    res = results(out)
    assert res["args"]["world_size"] == 2 and res["args"]["sync_bn"] and res["epochs_done"] == 3
    # Each epoch the trainer compared the ranks' weights (it stops if they differ) and kept the hash.
    assert all(len(r["weights_sha256"]) == 64 for r in res["history"])
    assert done.stdout.count("results written") == 1                 # rank 0 speaks for all
    assert "2 processes, 8 images each per batch" in done.stdout
    # The sharded evaluation equals a one-process evaluation of the saved weights.
    plain("part_t", [str(tmp_path / "e") if a == str(out) else a for a in argv] + ["--eval-only", str(out / "epoch3.pt")])
    one = results(tmp_path / "e")
    assert one["counts"] == res["counts"]


def test_sigterm_to_torchrun_stops_both_ranks_and_resume_gives_the_same_weights(two_ranks, tmp_path):
    """SIGTERM sent to the launcher in epoch 2, as a cluster does: both workers stop after the same batch
    with one mid-epoch checkpoint (each rank's RNG streams, position and masks in it), and --resume auto
    finishes with the uninterrupted run's weights and results."""
    import re
    import signal
    out, argv, _ = two_ranks
    mine = [str(tmp_path) if a == str(out) else a for a in argv]
    proc = subprocess.Popen(launch(2, "train_eval_part_t.py", mine), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    try:
        for line in proc.stdout:
            if line.startswith("Train Epoch: 2 ["):          # after the first batch of epoch 2 (of 5)
                proc.send_signal(signal.SIGTERM)
                break
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "interrupted by SIGTERM" in err and "continue with:" in err, err
    assert not (tmp_path / "results.json").exists()
    stop = Path(re.search(r"checkpoint (\S+) written", err)[1])
    assert re.fullmatch(r"epoch2_batch\d\.pt", stop.name), stop
    ckpt = load_checkpoint(stop, CPU)
    assert len(ckpt["ranks"]) == 2 and all(r["position"] and r["budget"] is not None for r in ckpt["ranks"])
    resumed = torchrun(2, "train_eval_part_t.py", mine + ["--resume", "auto"])
    assert resumed.returncode == 0, resumed.stderr
    assert same(weights(out / "epoch3.pt"), weights(tmp_path / "epoch3.pt"))
    assert comparable(results(out)) == comparable(results(tmp_path))
    assert results(tmp_path)["resumes"][0]["batches"] > 0


def test_two_ranks_of_part_with_per_rank_batch_norms(tiny_folder, tmp_path):
    """The default PART (AT warm-up, masks of each batch's own map) on 2 ranks of the BatchNorm CNN without
    --sync-bn: each rank's batch statistics, the weights compared after every epoch (the run stops if the
    ranks differ)."""
    run = torchrun(2, "train_eval_part.py", tiny_argv(tiny_folder, tmp_path, "--model", "smallcnn-bn",
                                                      "--batch-size", "16", "--train-subset", "32", "--epochs", "2",
                                                      "--num-steps", "1", "--eval", "natural", "--test-subset", "8"))
    assert run.returncode == 0, run.stderr
    res = results(tmp_path)
    assert not res["args"]["sync_bn"] and res["args"]["world_size"] == 2
    assert [r["phase"] for r in res["history"]] == ["warm-up", "part"]
    assert all(len(r["weights_sha256"]) == 64 for r in res["history"])


def test_sync_bn_two_ranks():
    """GlobalBatchNorm2d on 2 ranks equals BatchNorm2d on both ranks' images (training under --sync-bn:
    the two-rank run above)."""
    check = torchrun(2, "tests/helpers/global_bn_check.py", [])
    assert check.stdout.count("equal") == 2, check.stderr          # both ranks passed every check
    # Once in a full suite run (2026-12-04) both ranks aborted in the process group's teardown, after
    # their checks ("terminate called without an active exception", torch's gloo threads at exit).
    assert check.returncode == 0 or "terminate called without an active exception" in check.stderr, check.stderr


@pytest.mark.parametrize("sync", [False, True])
def test_sync_bn_flag_builds_global_batch_norms(tiny_folder, tmp_path, sync):
    """--sync-bn is what puts GlobalBatchNorm2d into the trained model (the two-rank run above would
    also pass with plain BatchNorm)."""
    from models.syncbn import GlobalBatchNorm2d
    from runner.training.run import prepare
    args = get_args("part", tiny_argv(tiny_folder, tmp_path, "--model", "smallcnn-bn", *(["--sync-bn"] * sync)))
    kinds = {type(m) for m in prepare(args)[0].model.modules()}
    assert (GlobalBatchNorm2d in kinds) == sync and (torch.nn.BatchNorm2d in kinds) == (not sync)


def test_evaluation_depends_on_the_weights_and_images_alone(real_run, tmp_path, monkeypatch):
    """Per-image seeding (the default): the same checkpoint of the suite's real-data model (counts away
    from 0 and chance) evaluated in one process in batches of 128, over 2 torchrun ranks in batches of 16
    (5 batches: two rounds of 2, then one with a rank idle), and in batches of 7 interrupted and resumed,
    gives the same counts (natural, PGD-20, MMA, AutoAttack)."""
    import contextlib
    import io

    from runner.main import main
    _, folder = real_run
    base = ["--model", REAL_MODEL, "--data-dir", str(SHARED_ZIP), "--no-download", "--test-subset", "70",
            "--eval", "natural,pgd20,mma,aa", "--aa-subset", "9", "--eval-only", str(folder / f"epoch{REAL_EPOCHS}.pt"),
            "--no-progress"]
    plain("part", base + ["--batch-size", "128", "--results", str(tmp_path / "b128.json")])
    counts = {"batch 128": json.loads((tmp_path / "b128.json").read_text())["counts"]}
    ranks = torchrun(2, "train_eval_part.py", base + ["--batch-size", "16", "--results", str(tmp_path / "r2.json")])
    assert ranks.returncode == 0, ranks.stderr
    counts["2 ranks"] = json.loads((tmp_path / "r2.json").read_text())["counts"]
    monkeypatch.setenv(TEST_HOOK, "eval:mma:1:SIGTERM")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = base + ["--batch-size", "7", "--results", str(tmp_path / "stopped.json")]
        assert main("part", argv) == 143
        monkeypatch.delenv(TEST_HOOK)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main("part", argv) == 0        # the same command continues the evaluation
    finally:
        torch.set_num_threads(threads)
    counts["resumed"] = json.loads((tmp_path / "stopped.json").read_text())["counts"]
    first = counts["batch 128"]
    assert all(c == first for c in counts.values()), counts
    assert 0 < first["pgd20"] < first["natural"] and first["mma"] <= first["natural"]
    assert first["natural"] > 2 * 70 // 10           # twice chance on the 70 images


def test_batch_seeding_replays_the_earlier_scheme(real_run):
    """--eval-seeding batch (the CPU study's runs): batch i of PGD-20 on the seed 1,000,000 + i, as every
    run before per-image seeding; it depends on the batch size, per-image seeding does not."""
    from attacks.common import uniform_clipped_start
    from attacks.pgd import pgd
    from runner.evaluation.evaluate import evaluate
    from common.rng import seeded
    _, folder = real_run
    model, x, y = _real_model(folder)
    x, y = x[:64], y[:64]
    from torch.utils.data import DataLoader, TensorDataset
    expected = 0
    for i in range(2):
        xb, yb = x[32 * i:32 * (i + 1)], y[32 * i:32 * (i + 1)]
        with seeded(1_000_000 + i, CPU):
            adv = pgd(model, xb, yb, 8 / 255, 2 / 255, 20, start=uniform_clipped_start)
        expected += int((model(adv).argmax(1) == yb).sum())
    got = {}
    for scheme in ("batch", "image"):
        for bs in (32, 16):
            args = get_args("part", ["--eval-seeding", scheme])
            ev = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=bs), ["pgd20"], args, 10, verbose=False)
            got[scheme, bs] = ev["counts"]["pgd20"]
    assert got["batch", 32] == expected
    assert got["image", 32] == got["image", 16]


def _real_model(folder):
    from models.zoo import build_model
    from runner.data.sources import load_splits
    model = build_model(REAL_MODEL, 10)
    model.load_state_dict(load_checkpoint(folder / f"epoch{REAL_EPOCHS}.pt", CPU)["model"])
    _, test = load_splits("CIFAR10", SHARED_ZIP, False, 1, 64)
    x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255
    return model.eval(), x, torch.from_numpy(test.labels)
