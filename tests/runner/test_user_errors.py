"""Bad input is one line and exit 2, found before the data load; shared-cluster file modes;
temporary files of killed writes; a second signal; what the results and the terminal say."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, one_line, tiny_argv
from runner.infra.checkpoint import load_checkpoint
from common.errors import UserError
from runner.main import main

CPU = torch.device("cpu")
SMALL = ("--batch-size", "16", "--num-steps", "1", "--test-subset", "16", "--epochs", "1", "--eval", "natural")
MISSING_DATA = "/nonexistent/data"


def argv_for(data, out, *extra):
    return tiny_argv(data, out, *SMALL, *extra)


@pytest.fixture(scope="module")
def trained(tiny_folder, tmp_path_factory) -> Path:
    """A finished one-epoch small-CNN run (its folder): the small CNN's record names its image size."""
    out = tmp_path_factory.mktemp("trained")
    assert main("part", argv_for(tiny_folder, out, "--model", "smallcnn")) == 0
    return out


def test_text_file_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("hello\nworld\n")
    assert main("part", ["--eval-only", str(text), "--data-dir", MISSING_DATA, "--no-download",
                         "--model-dir", str(tmp_path / "m")]) == 2
    one_line(capsys, f"cannot read checkpoint {text}: not a torch checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UserError, match="the file is empty"):
        load_checkpoint(tmp_path / "empty.pt", CPU)


class _System:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-system",))


@pytest.mark.parametrize("legacy", [False, True])
def test_os_system_pickle_is_refused_by_its_globals(tmp_path, legacy, monkeypatch, capsys):
    """Refused whatever torch's message says: the refusal is read from the pickle's globals."""
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"model": _System()}, evil, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UserError, match=r"refused to load checkpoint .* needs posix\.system to unpickle"):
        load_checkpoint(evil, CPU)
    # torch's wording may change (it did by 2.14): a different message must not turn a refusal into
    # "not a torch checkpoint".
    real_load = torch.load

    def reworded(*a, **k):
        try:
            return real_load(*a, **k)
        except Exception as exc:
            raise type(exc)("something else entirely") from None
    monkeypatch.setattr(torch, "load", reworded)
    assert main("part", ["--eval-only", str(evil), "--data-dir", MISSING_DATA, "--model-dir", str(tmp_path / "m")]) == 2
    one_line(capsys, "refused to load checkpoint", "posix.system")
    assert not (tmp_path / "pwned-by-system").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickled_module_is_refused_naming_its_class(tmp_path, legacy):
    """A whole model saved with torch.save(model): torch's own classes are not all loadable either."""
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UserError, match=r"refused .* needs .*torch\.nn\.modules\.container\.Sequential"):
        load_checkpoint(path, CPU)


def test_checkpoint_of_another_model_is_named_before_the_data_load(trained, tmp_path, capsys):
    # The data folder does not exist: a message about the checkpoint proves it came first.
    for flag in ("--eval-only", "--resume"):
        argv = ["--model", "resnet", "--data-dir", MISSING_DATA, "--no-download", flag, str(trained / "epoch1.pt"),
                "--model-dir", str(tmp_path / "m")]
        if flag == "--resume":
            argv.append("--resume-anyway")
        assert main("part", argv) == 2
        one_line(capsys, "does not fit --model resnet: it holds a smallcnn for 10 classes of 32x32 images",
                  "give --model smallcnn")
    assert main("part", ["--model", "smallcnn", "--data", "TinyImagenet", "--data-dir", MISSING_DATA,
                         "--eval-only", str(trained / "epoch1.pt"), "--model-dir", str(tmp_path / "m")]) == 2
    one_line(capsys, "not a smallcnn for 200 classes of 64x64 images; give the --data it was trained on")
    assert not (tmp_path / "m").exists()


def test_unwritable_output_is_found_before_the_data_load(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main("part", ["--data-dir", MISSING_DATA, "--no-download", "--model-dir", str(blocker / "m")]) == 2
    one_line(capsys, f"cannot write to {blocker / 'm'}")
    assert main("part", ["--data-dir", MISSING_DATA, "--no-download", "--model-dir", str(tmp_path / "m"),
                         "--results", str(blocker / "r.json")]) == 2
    one_line(capsys, f"cannot write to {blocker}")
    # A writable folder that does not exist yet is probed without being left behind.
    assert main("part", ["--data-dir", MISSING_DATA, "--no-download", "--model-dir", str(tmp_path / "new" / "m")]) == 2
    one_line(capsys, "no CIFAR10 data found")
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_empty_class_folders_stop_before_anything_is_written(tmp_path, capsys):
    for split in ("train", "test"):
        for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
    assert main("part", argv_for(tmp_path / "data", tmp_path / "m")) == 2
    one_line(capsys, "has no images in its train/<class>/ folders")
    assert not (tmp_path / "m").exists()


def test_resume_auto_with_only_unreadable_checkpoints_says_what_to_do(tiny_folder, tmp_path, capsys):
    (tmp_path / "epoch1.pt").write_bytes(b"PK\x03\x04 cut short")
    argv = argv_for(tiny_folder, tmp_path, "--resume", "auto")
    assert main("part", argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint in" in err and "--overwrite" in err and "--resume auto" not in \
        err.split("--resume auto:", 1)[1]
    assert main("part", argv + ["--overwrite"]) == 0         # the advice works
    assert load_checkpoint(tmp_path / "epoch1.pt", CPU)["epoch"] == 1


def test_stale_temporaries_of_a_killed_write_are_removed(tiny_folder, tmp_path, capsys):
    from runner.infra.files import _HOST
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()                 # a process that has exited
    stale = [tmp_path / f".epoch1.pt.{dead}@{_HOST}.0123abcd.tmp", tmp_path / f".results.json.{dead}@{_HOST}.fedc9876.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    keep = [tmp_path / ".someone-elses.tmp",
            tmp_path / f".epoch1.pt.{os.getpid()}@{_HOST}.00000000.tmp",       # its writer is alive
            tmp_path / f".epoch1.pt.{dead}@another_machine.11111111.tmp"]      # written within the hour
    for p in keep:
        p.write_text("not stale")
    assert main("part", argv_for(tiny_folder, tmp_path, "--resume", "auto")) == 0
    assert "removed 2 temporary file(s) left by an interrupted write" in capsys.readouterr().out
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    # --eval-only leaves the model folder alone (another run may be writing there).
    stale[0].write_bytes(b"half a file")
    assert main("part", argv_for(tiny_folder, tmp_path, "--eval-only", str(tmp_path / "epoch1.pt"),
                                 "--results", str(tmp_path / "eval" / "r.json"))) == 0
    assert stale[0].exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_honour_the_umask(tiny_folder, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert main("part", argv_for(tiny_folder, tmp_path)) == 0
    finally:
        os.umask(old)
    for name in ("epoch1.pt", "results.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_results_record_the_folders_used_and_eval_only_says_so(trained, tiny_folder, tmp_path, capsys):
    res = json.loads((trained / "results.json").read_text())
    assert res["args"]["model_dir"] == str(trained) and res["args"]["results"] == str(trained / "results.json")
    capsys.readouterr()
    argv = argv_for(tiny_folder, tmp_path, "--eval-only", str(trained / "epoch1.pt"), "--model", "smallcnn")
    assert main("part", argv) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert header.startswith(f"evaluating {trained / 'epoch1.pt'} | PART | CIFAR10 (16 test) | smallcnn | cpu")
    assert " train " not in header and "augmentation" not in header


def test_every_progress_bar_is_closed(monkeypatch, capsys):
    """With progress bars on, each is closed before its accuracy line is printed (an attack's bar is
    advanced by hand and never exhausted, so nothing closes it by itself)."""
    from models.zoo import build_model
    from runner.cli.args import get_args
    import runner.evaluation.evaluate as evaluate_module
    bars, events = [], []

    class Recording(evaluate_module.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            bars.append(self)

        def close(self):
            if not getattr(self, "closed_here", False):
                events.append(f"close {self.desc}")
            self.closed_here = True
            super().close()
    monkeypatch.setattr(evaluate_module, "tqdm", Recording)
    line = evaluate_module.accuracy_line
    monkeypatch.setattr(evaluate_module, "accuracy_line", lambda *a: events.append("line") or line(*a))
    data = torch.utils.data.TensorDataset(torch.rand(8, 3, 32, 32), torch.arange(8) % 10)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    args = get_args("part", ["--num-steps", "1"])
    evaluate_module.evaluate(build_model("smallcnn", 10), loader, ["natural", "pgd20"], args, 10, progress=True,
                             verbose=True)
    assert len(bars) == 2 and events == ["close natural", "line", "close pgd20", "line"]


# --- a second signal --------------------------------------------------------------------------------
_SCRIPT = """
import hashlib, multiprocessing as mp, sys, time
sys.path.insert(0, {repo!r})
from runner.infra.interrupt import StopRequest
with StopRequest() as stop:
    child = mp.get_context("fork").Process(target=time.sleep, args=(60,))
    child.start()
    print("ready", flush=True)
    hashlib.pbkdf2_hmac("sha256", b"x", b"y", 4_000_000)      # one long C call, about a second
    print("signal", stop.signum, flush=True)
    t0 = time.perf_counter()
    child.terminate()             # a worker that saw the first signal still stops on the next
    child.join()
    print("worker stopped in", round(time.perf_counter() - t0), "s", flush=True)
"""


def _run_signalled(send) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT.format(repo=str(REPO))], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.1)
        send(proc)
        code = proc.wait(timeout=60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the worker, if its parent died first
        except ProcessLookupError:
            pass
    return code, proc.stdout.read()


def test_two_signals_in_one_long_call_stop_at_once():
    def twice(proc):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
    code, out = _run_signalled(twice)
    assert code == -signal.SIGTERM and "signal" not in out.replace("SIGTERM received", "")


def test_one_signal_to_the_process_group_is_one_even_with_a_forked_worker():
    """A Ctrl-C or a scheduler's SIGTERM reaches the DataLoader workers too; theirs must not count."""
    code, out = _run_signalled(lambda proc: os.killpg(proc.pid, signal.SIGTERM))
    assert code == 0 and "signal 15" in out and out.count("SIGTERM received") == 1
    assert "worker stopped in 0 s" in out


def test_a_plain_pickle_is_refused_without_a_warning(tmp_path):
    """Whatever wrote the file (pickle.dump here, not torch.save), the refusal is the only output."""
    import pickle
    import warnings
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"model": _System()}, fh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError, match=r"refused to load checkpoint .* needs posix\.system"):
            load_checkpoint(evil, CPU)
    assert not caught


@pytest.mark.parametrize("seed", ["-5", str(2**32)])
def test_seed_outside_numpys_range_isone_line(seed, capsys):
    with pytest.raises(SystemExit) as exc:
        main("part", ["--seed", seed])
    assert exc.value.code == 2
    one_line(capsys, "--seed", seed)


@pytest.mark.parametrize("layout", ["folder", "zip"])
@pytest.mark.parametrize("flag,total", [("--train-subset", 80), ("--test-subset", 40)])
def test_subset_larger_than_its_split_names_the_split_size(tiny_folder, tiny_zip, tmp_path, capsys, layout,
                                                           flag, total):
    data = tiny_folder if layout == "folder" else tiny_zip
    argv = tiny_argv(data, tmp_path / "m", "--epochs", "1", "--eval", "natural", flag, str(total + 1))
    assert main("part", argv) == 2
    split = flag[2:].split("-")[0]
    one_line(capsys, f"{flag} {total + 1} is larger than the {split} split, which holds {total} images")
    assert not (tmp_path / "m").exists()


def test_damaged_image_in_a_zip_is_named_by_zip_and_member(tiny_folder, tmp_path, capsys):
    import zipfile
    bad = tmp_path / "cifar10-bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for f in sorted(tiny_folder.rglob("*.png")):
            rel = f.relative_to(tiny_folder).as_posix()
            zf.writestr(f"cifar10/{rel}", b"\xff\xd8\xff not a jpeg" if rel == "test/cat/0003.png" else f.read_bytes())
    assert main("part", tiny_argv(bad, tmp_path / "m", "--epochs", "1", "--eval", "natural")) == 2
    err = one_line(capsys, f"cannot read image {bad}:cifar10/test/cat/0003.png", "not an image PIL can identify")
    assert "BytesIO" not in err
