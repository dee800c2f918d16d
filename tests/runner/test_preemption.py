"""Runs that survive preemption, bad files and mistakes. A real signal (os.kill from the
trainer's test hook) stops a run after a chosen batch; --resume must then give the uninterrupted
run's weights, history and accuracies bit for bit."""
import hashlib
import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, tiny_argv, zip_tree
from tests.helpers.compare import comparable
from runner.data.sources import load_splits
from runner.infra.checkpoint import load_checkpoint
from runner.infra.provenance import project_path
from common.errors import UserError
from runner.infra.interrupt import TEST_HOOK
from runner.main import main

CPU = torch.device("cpu")
# 80 training images in batches of 16: 5 batches per epoch; epoch 1 warm-up, epoch 2 the PART phase.
SMALL = ("--batch-size", "16", "--num-steps", "1", "--test-subset", "16", "--save-freq", "10")
_straight: dict = {}


def argv_for(data: Path, out: Path, *extra: str) -> list[str]:
    return tiny_argv(data, out, *SMALL, *extra)


def final_state(folder: Path) -> dict:
    ckpt = load_checkpoint(folder / "epoch2.pt", CPU)
    return {"model": ckpt["model"], "momentum": [s["momentum_buffer"] for s in ckpt["optimizer"]["state"].values()]}


def same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]) and \
        all(torch.equal(x, y) for x, y in zip(a["momentum"], b["momentum"]))


def straight(tiny_folder, tmp_path_factory, script: str, extra: tuple) -> tuple[dict, dict]:
    """The uninterrupted run (computed once per script and flags)."""
    key = (script, extra)
    if key not in _straight:
        out = tmp_path_factory.mktemp("straight")
        assert main(script, argv_for(tiny_folder, out, *extra)) == 0
        _straight[key] = (json.loads((out / "results.json").read_text()), final_state(out))
    return _straight[key]


def continue_as_printed(script: str, stderr: str) -> int:
    """Run the command the interrupted run printed, as printed."""
    line = [l for l in stderr.splitlines() if "continue with: " in l][-1]
    cmd = shlex.split(line.split("continue with: ", 1)[1])
    assert cmd[:2] == ["python", f"train_eval_{script}.py"]
    return main(script, cmd[2:])


@pytest.mark.parametrize("script,hook,extra,checkpoint", [
    ("part", "1:2:SIGTERM", (), "epoch1_batch3.pt"),                                   # AT warm-up
    ("part", "2:2:SIGTERM", (), "epoch2_batch3.pt"),                                   # PART
    ("part", "2:1:SIGINT", ("--cam-refresh", "official"), "epoch2_batch2.pt"),       # official pairing masks
    ("part", "1:4:SIGTERM", (), "epoch1.pt"),                                          # last batch: epoch end
    ("part", "2:3:SIGTERM", ("--loader", "resident"), "epoch2_batch4.pt"),
    ("part", "1:1:SIGTERM", ("--workers", "2"), "epoch1_batch2.pt"),
    ("part_t", "1:2:SIGTERM", (), "epoch1_batch3.pt"),                                 # TRADES warm-up
    ("part_t", "2:2:SIGTERM", (), "epoch2_batch3.pt"),                                 # PART-T
    ("part_m", "1:2:SIGTERM", (), "epoch1_batch3.pt"),                                 # MART warm-up
    ("part_m", "2:2:SIGTERM", (), "epoch2_batch3.pt"),                                 # PART-M
    ("part", "2:2:SIGTERM", ("--mask-rule", "random", "--random-share", "0.4"), "epoch2_batch3.pt"),  # placement control
    ("part_t", "2:2:SIGTERM", ("--awp-gamma", "5e-3", "--awp-warmup", "2"), "epoch2_batch3.pt"),     # PART-T-AWP
])
def test_interrupted_run_resumes_bit_for_bit(tiny_folder, tmp_path, tmp_path_factory, monkeypatch, capsys,
                                             script, hook, extra, checkpoint):
    results, state = straight(tiny_folder, tmp_path_factory, script, extra)
    argv = argv_for(tiny_folder, tmp_path, *extra)
    monkeypatch.setenv(TEST_HOOK, hook)
    assert main(script, argv) == (130 if "SIGINT" in hook else 143)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / checkpoint) in err and "Traceback" not in err
    assert (tmp_path / checkpoint).exists() and not (tmp_path / "results.json").exists()
    monkeypatch.delenv(TEST_HOOK)
    assert continue_as_printed(script, err) == 0
    resumed = json.loads((tmp_path / "results.json").read_text())
    assert comparable(resumed) == comparable(results)
    assert same_state(final_state(tmp_path), state)
    assert resumed["resumes"][0]["checkpoint"] == project_path(tmp_path / checkpoint)
    # The mid-epoch checkpoint is gone once a complete one after it exists.
    assert not list(tmp_path.glob("epoch*_batch*.pt"))


def test_official_pairing_resume_keeps_the_masks_of_an_earlier_epoch(tiny_folder, tmp_path):
    """--save-weights 2: masks made in epoch 3 are still used in epoch 4; a resume from epoch3.pt must
    bring them along (recomputing them from epoch 3's weights would change epoch 4)."""
    common = ("--epochs", "4", "--cam-refresh", "official", "--save-weights", "2", "--save-freq", "1",
              "--eval", "natural")
    assert main("part", argv_for(tiny_folder, tmp_path / "a", *common)) == 0
    assert main("part", argv_for(tiny_folder, tmp_path / "b", *common, "--epochs", "3")) == 0
    assert main("part", argv_for(tiny_folder, tmp_path / "b", *common, "--resume",
                                 str(tmp_path / "b" / "epoch3.pt"))) == 0
    a, b = (load_checkpoint(tmp_path / d / "epoch4.pt", CPU)["model"] for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_in_a_real_process_exits_143(tiny_folder, tmp_path):
    out = subprocess.run([sys.executable, "train_eval_part.py", *argv_for(tiny_folder, tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env={**_env(), TEST_HOOK: "2:0:SIGTERM"})
    assert out.returncode == 143 and out.stderr.count("\n") == 1, out.stderr
    assert "interrupted by SIGTERM in epoch 2 after batch 1 of 5" in out.stderr
    assert (tmp_path / "epoch2_batch1.pt").exists()


def _env() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if k != TEST_HOOK}


def test_resume_auto_none_one_several_and_truncated(tiny_folder, tmp_path, capsys):
    argv = argv_for(tiny_folder, tmp_path, "--epochs", "1", "--resume", "auto")
    assert main("part", argv) == 0                                     # none: a fresh start
    assert "no checkpoint to continue" in capsys.readouterr().out
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert main("part", argv) == 0                                     # one, and finished: nothing to do
    assert "this run is finished" in capsys.readouterr().out
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == files   # untouched
    more = argv_for(tiny_folder, tmp_path, "--epochs", "3", "--save-freq", "1", "--resume", "auto")
    assert main("part", more) == 0                                     # continues epoch1.pt to epoch 3
    out = capsys.readouterr().out
    assert f"resumed from {tmp_path / 'epoch1.pt'} after epoch 1" in out
    # Several, the newest truncated: it is named and passed over.
    data = (tmp_path / "epoch3.pt").read_bytes()
    (tmp_path / "epoch3.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "results.json").unlink()
    assert main("part", more) == 0
    out = capsys.readouterr().out
    assert f"skipped {tmp_path / 'epoch3.pt'}" in out and f"resumed from {tmp_path / 'epoch2.pt'}" in out
    assert load_checkpoint(tmp_path / "epoch3.pt", CPU)["epoch"] == 3     # written anew, whole


def test_malicious_pickle_is_refused_not_run(tiny_folder, tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))
    evil = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, evil)
    for flag in ("--eval-only", "--resume"):
        assert main("part", argv_for(tiny_folder, tmp_path / "m", flag, str(evil))) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "refused to load checkpoint" in err
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(evil, CPU)
    assert not (tmp_path / "pwned").exists()


def test_official_bare_state_dict_with_module_prefix_evaluates(tiny_folder, tmp_path):
    assert main("part", argv_for(tiny_folder, tmp_path / "m", "--eval", "natural")) == 0
    weights = load_checkpoint(tmp_path / "m" / "epoch2.pt", CPU)["model"]
    torch.save({f"module.{k}": v for k, v in weights.items()}, tmp_path / "official.pt")
    assert main("part", argv_for(tiny_folder, tmp_path / "e", "--eval-only", str(tmp_path / "official.pt"),
                                 "--eval", "natural")) == 0
    a, b = (json.loads(p.read_text()) for p in (tmp_path / "m" / "results.json", tmp_path / "e" / "results.json"))
    assert a["counts"] == b["counts"]


def test_resume_with_other_settings_names_each_difference(tiny_folder, tmp_path, capsys):
    assert main("part", argv_for(tiny_folder, tmp_path, "--epochs", "1", "--eval", "natural")) == 0
    capsys.readouterr()
    other = argv_for(tiny_folder, tmp_path, "--epochs", "2", "--eval", "natural", "--epsilon", "4/255",
                     "--low-epsilon", "2/255", "--cam", "layercam", "--resume", str(tmp_path / "epoch1.pt"))
    assert main("part", other) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume-anyway" in err
    for needle in ("--epsilon 0.0313725 in the checkpoint, 0.0156863 now", "--low-epsilon", "--cam gradcam in the "
                   "checkpoint, layercam now"):
        assert needle in err
    assert "--epochs" not in err and not (tmp_path / "epoch2.pt").exists()
    assert main("part_t", argv_for(tiny_folder, tmp_path, "--resume", str(tmp_path / "epoch1.pt"))) == 2
    assert "the script train_eval_part.py in the checkpoint, train_eval_part_t.py now" in capsys.readouterr().err
    assert main("part", other + ["--resume-anyway"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["resumes"][0]["differences"]["cam"] == ["gradcam", "layercam"] and res["args"]["resume_anyway"]


def test_fresh_run_does_not_write_over_another(tiny_folder, tmp_path, capsys):
    argv = argv_for(tiny_folder, tmp_path, "--epochs", "1", "--eval", "natural")
    assert main("part", argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main("part", argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "epoch1.pt") in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # A results file alone is protected too (a fresh run, and an evaluation).
    results = tmp_path / "elsewhere.json"
    results.write_text("keep me")
    assert main("part", argv_for(tiny_folder, tmp_path / "n", "--results", str(results))) == 2
    assert main("part", argv_for(tiny_folder, tmp_path / "n", "--results", str(results),
                                 "--eval-only", str(tmp_path / "epoch1.pt"))) == 2
    assert results.read_text() == "keep me"
    assert main("part", argv + ["--overwrite", "--seed", "2"]) == 0
    assert "--overwrite: removed" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "epoch1.pt", CPU)["args"]["seed"] == 2
    # Output folders are checked before any training.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main("part", argv_for(tiny_folder, blocker / "sub", "--epochs", "1")) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_interrupted_evaluation_continues_to_the_same_results(tiny_folder, tmp_path, monkeypatch, capsys):
    """AutoAttack of --eval-only, and MMA of the final evaluation after training."""
    assert main("part", argv_for(tiny_folder, tmp_path / "m", "--eval", "natural")) == 0
    ckpt = str(tmp_path / "m" / "epoch2.pt")
    # Batch seeding: AutoAttack in batches of --batch-size (per-image seeding runs it in chunks of 128).
    aa = ("--eval", "natural,aa", "--test-subset", "24", "--batch-size", "8", "--eval-seeding", "batch",
          "--eval-only", ckpt)
    assert main("part", argv_for(tiny_folder, tmp_path / "a", *aa)) == 0
    monkeypatch.setenv(TEST_HOOK, "eval:aa:0:SIGTERM")
    assert main("part", argv_for(tiny_folder, tmp_path / "b", *aa)) == 143
    err = capsys.readouterr().err
    assert "during the AA evaluation after batch 1 of 3" in err
    progress = json.loads((tmp_path / "b" / "results.eval-progress.json").read_text())
    assert len(progress["batches"]["aa"]) == 1
    monkeypatch.delenv(TEST_HOOK)
    assert continue_as_printed("part", err) == 0
    assert "evaluation continues from" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert comparable(a) == comparable(b) and not (tmp_path / "b" / "results.eval-progress.json").exists()

    mma = ("--eval", "natural,mma", "--batch-size", "8")
    assert main("part", argv_for(tiny_folder, tmp_path / "c", *mma)) == 0
    monkeypatch.setenv(TEST_HOOK, "eval:mma:0:SIGTERM")
    assert main("part", argv_for(tiny_folder, tmp_path / "d", *mma)) == 143
    err = capsys.readouterr().err
    monkeypatch.delenv(TEST_HOOK)
    assert f"--resume {tmp_path / 'd' / 'epoch2.pt'}" in err
    progress = json.loads((tmp_path / "d" / "results.eval-progress.json").read_text())
    assert len(progress["batches"]["mma"]) == 1
    assert continue_as_printed("part", err) == 0
    assert "evaluation continues from" in capsys.readouterr().out
    c, d = (json.loads((tmp_path / x / "results.json").read_text()) for x in "cd")
    assert comparable(c) == comparable(d)


def test_results_record_the_data(tiny_folder, tiny_zip, tmp_path):
    assert main("part", argv_for(tiny_zip, tmp_path / "z", "--eval", "natural", "--aa-subset", "5")) == 0
    data = json.loads((tmp_path / "z" / "results.json").read_text())["data"]
    assert data["layout"] == "zip" and data["path"] == project_path(tiny_zip) and not Path(data["path"]).is_absolute() and data["files"] == 120
    assert data["sha256"] == hashlib.sha256(tiny_zip.read_bytes()).hexdigest()
    assert len(data["test_indices"]) == 16 and data["test_images"] == 16 and data["train_images"] == 80
    assert "aa_indices" not in data       # no AutoAttack in this run's --eval
    _, test = load_splits("CIFAR10", tiny_folder, False)
    assert test.source["layout"] == "folder" and test.source["files"] == 120 and test.indices is None


def test_damaged_zip_is_one_line(tiny_folder, tmp_path, capsys):
    good = zip_tree(tiny_folder, tmp_path / "cifar10-good.zip", "cifar10")
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = next(i for i in zf.infolist() if "/train/" in i.filename)     # every training image is read
    # A byte inside the stored data of one member: its CRC-32 no longer matches.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 10
    data[start] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(data))
    (tmp_path / "cut.zip").write_bytes(good.read_bytes()[: len(data) // 2])
    for name in ("crc.zip", "cut.zip"):
        assert main("part", argv_for(tmp_path / name, tmp_path / "m", "--eval", "natural")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(tmp_path / name) in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_no_data_message_says_where_and_what_was_tried(tmp_path, capsys, monkeypatch):
    assert main("part", ["--data-dir", "nowhere", "--no-download", "--model-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"at {Path('nowhere').resolve()} (--data-dir nowhere)" in err and "download not tried (--no-download)" in err
    import torchvision

    def offline(*_a, **_k):
        raise OSError("Name or service not known")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(UserError, match=r"download tried and failed \(OSError: Name or service not known\)"):
        load_splits("CIFAR10", tmp_path / "fresh", download=True)
    assert not (tmp_path / "fresh").exists()


def test_signal_notice_survives_an_interrupted_print(monkeypatch, capfd):
    """A signal that lands while the process prints: the handler's own print would be a reentrant
    write on the same buffered stdout (RuntimeError, raised into the interrupted print: a torchrun
    rank crashed so once); the notice goes to the file descriptor instead."""
    import runner.infra.interrupt as interrupt

    def busy(*args, **kwargs):
        raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")
    monkeypatch.setattr(interrupt, "print", busy, raising=False)
    interrupt._notice("SIGTERM received: stopping after the current batch")
    assert "SIGTERM received: stopping after the current batch\n" in capfd.readouterr().out
