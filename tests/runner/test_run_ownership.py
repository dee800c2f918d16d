"""A run owns its files: another run's folder or results are refused before anything is touched, two
runs cannot write into one folder at once (two processes), a resume proves it continues on its own
data, and a run that fails leaves no folder behind."""
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, one_line, synthetic_split, tiny_argv, write_image_tree
from runner.cli.args import get_args
from runner.main import main
from runner.training.ownership import LOCK, OWNER, RunLock
from runner.training.run import default_model_dir

SMALL = ("--batch-size", "16", "--num-steps", "1", "--test-subset", "16", "--epochs", "1", "--eval", "natural")


def argv_for(data, out, *extra):
    return tiny_argv(data, out, *SMALL, *extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tiny_folder, tmp_path_factory) -> tuple[Path, Path]:
    """Two finished one-epoch runs, seeds 1 and 2, each in its own folder."""
    a, b = tmp_path_factory.mktemp("run_a"), tmp_path_factory.mktemp("run_b")
    assert main("part", argv_for(tiny_folder, a, "--seed", "1")) == 0
    assert main("part", argv_for(tiny_folder, b, "--seed", "2")) == 0
    return a, b


def test_each_run_records_its_id_in_folder_checkpoint_and_results(two_runs):
    import torch
    a, b = two_runs
    ids = []
    for folder in (a, b):
        owner = json.loads((folder / OWNER).read_text())
        ckpt = torch.load(folder / "epoch1.pt", weights_only=True)
        results = json.loads((folder / "results.json").read_text())
        assert owner["run_id"] == ckpt["run_id"] == results["run_id"]
        assert ckpt["data"]["sha256"] == results["data"]["sha256"]
        ids.append(owner["run_id"])
        assert not (folder / LOCK).exists()          # released at the end
    assert ids[0] != ids[1]


def test_resume_into_another_runs_folder_is_refused(two_runs, capsys):
    a, b = two_runs
    before = snapshot(b)
    assert main("part", argv_for(REPO, b, "--seed", "1", "--epochs", "2", "--resume", str(a / "epoch1.pt"))) == 2
    one_line(capsys, f"--model-dir {b} holds the files of run", "seed 2", "--overwrite")
    assert snapshot(b) == before


def test_resume_auto_with_another_runs_results_is_refused(two_runs, capsys):
    a, b = two_runs
    before = snapshot(b)
    # Finished (epoch 1 of 1): "finished" only when the results there are this run's own.
    assert main("part", argv_for(REPO, a, "--seed", "1", "--resume", "auto",
                                 "--results", str(b / "results.json"))) == 2
    one_line(capsys, f"{b / 'results.json'} holds the results of another run")
    # Not finished (continued to epoch 2): it would write over them.
    assert main("part", argv_for(REPO, a, "--seed", "1", "--resume", "auto", "--epochs", "2",
                                 "--results", str(b / "results.json"))) == 2
    one_line(capsys, "holds the results of another run")
    assert snapshot(b) == before


def test_resume_auto_of_a_finished_run_reads_its_own_results(two_runs, capsys):
    a, _ = two_runs
    assert main("part", argv_for(REPO, a, "--seed", "1", "--resume", "auto")) == 0
    assert "this run is finished" in capsys.readouterr().out


def test_overwrite_replaces_the_other_run_as_a_whole(tiny_folder, two_runs, tmp_path, capsys):
    _, b = two_runs
    target = tmp_path / "target"
    shutil.copytree(b, target)
    (target / "masks_epoch1.png").write_bytes(b"a picture of the other run")
    (target / "epoch7.pt").write_bytes(b"an older checkpoint of the other run")
    old_id = json.loads((target / OWNER).read_text())["run_id"]
    assert main("part", argv_for(tiny_folder, target, "--seed", "3", "--overwrite")) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted([OWNER, "epoch1.pt", "results.json"])
    assert json.loads((target / OWNER).read_text())["run_id"] != old_id


def test_two_runs_into_one_folder_at_once(tiny_folder, tmp_path):
    """Two processes: the second refuses while the first holds the folder; the first finishes."""
    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, "train_eval_part.py", *argv_for(tiny_folder, out, "--epochs", "3")],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stdout:           # it holds the folder once it announces the run
            if line.startswith("PART |"):
                break
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run([sys.executable, "train_eval_part.py",
                                 *argv_for(tiny_folder, out, "--epochs", "3", "--seed", "2")],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"another run is writing into {out} (process {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert json.loads((out / "results.json").read_text())["args"]["seed"] == 1
    assert not (out / LOCK).exists()


def test_a_killed_runs_lock_does_not_hold_the_folder(tiny_folder, tmp_path, capsys):
    out = tmp_path / "killed"
    first = subprocess.Popen([sys.executable, "train_eval_part.py", *argv_for(tiny_folder, out, "--epochs", "3")],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in first.stdout:
        if line.startswith("PART |"):
            break
    first.kill()
    first.wait()
    assert (out / LOCK).exists()                 # left behind by SIGKILL, but no process holds it
    assert main("part", argv_for(tiny_folder, out, "--epochs", "3", "--resume", "auto")) == 0
    assert not (out / LOCK).exists()


def test_lock_names_the_holder_and_frees_on_exit(tmp_path):
    from common.errors import UserError
    with RunLock([tmp_path / "a" / LOCK]):
        with pytest.raises(UserError, match="another run is writing into"):
            RunLock([tmp_path / "a" / LOCK]).__enter__()
    with RunLock([tmp_path / "a" / LOCK]):
        pass
    assert not (tmp_path / "a").exists()         # made for the lock, left empty: removed


def test_default_folder_is_one_per_seed_and_baseline():
    folders = {default_model_dir(get_args("part", argv)) for argv in
               ([], ["--seed", "2"], ["--no-reweight"], ["--no-reweight", "--seed", "2"])}
    assert len(folders) == 4


@pytest.fixture(scope="module")
def other_images(tmp_path_factory) -> Path:
    """The tiny layout with other training images (another seed)."""
    splits = {"train": synthetic_split(80, 7), "test": synthetic_split(40, 1)}
    return write_image_tree(tmp_path_factory.mktemp("other"), splits)


def test_resume_on_other_data_is_refused_same_data_elsewhere_accepted(tiny_folder, other_images, tmp_path,
                                                                       capsys):
    out = tmp_path / "run"
    assert main("part", argv_for(tiny_folder, out)) == 0
    resume = ("--epochs", "2", "--resume", str(out / "epoch1.pt"), "--results", str(tmp_path / "r.json"))
    before = snapshot(out)
    assert main("part", argv_for(other_images, out, *resume)) == 2
    one_line(capsys, "was trained on other data than --data-dir", "--resume-anyway")
    assert snapshot(out) == before
    moved = tmp_path / "moved"
    shutil.copytree(tiny_folder, moved)
    assert main("part", argv_for(moved, out, *resume)) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["resumes"][-1]["data_dir"] == str(moved) and results["resumes"][-1]["differences"] == {}


def test_results_naming_a_folder_is_one_line_and_deletes_nothing(two_runs, tiny_folder, tmp_path, capsys):
    a, _ = two_runs
    before = snapshot(a)
    assert main("part", argv_for(tiny_folder, a, "--results", str(tmp_path), "--overwrite")) == 2
    one_line(capsys, f"--results {tmp_path} is a folder")
    assert main("part", argv_for(tiny_folder, tmp_path / "m", "--eval-only", str(a / "epoch1.pt"),
                                 "--results", str(tmp_path), "--overwrite")) == 2
    one_line(capsys, "is a folder")
    assert snapshot(a) == before


def test_a_failed_run_leaves_no_folder(tiny_folder, tmp_path, capsys):
    out = tmp_path / "deep" / "run"
    assert main("part", argv_for(tiny_folder, out, "--lr", "1e30")) == 3     # the loss overflows in epoch 1
    assert "non-finite training loss" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()
    assert main("part", argv_for(tiny_folder, out)) == 0                     # the folder is free again
