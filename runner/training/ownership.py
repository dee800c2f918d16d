"""Which run a folder's files belong to, and one run at a time in a folder.

A run's identity is an id drawn when it starts fresh (`run_id`), kept by every resume. It is written
into its --model-dir as `run.json` (with the method, seed and a hash of the settings, to name the run in
a message), into every checkpoint and into the results JSON. Before a run writes or deletes anything,
`claim` checks that the files at its paths are its own: another run's files stop it in one line, unless
--overwrite, which replaces them as a whole. `RunLock` holds the folder for the run's life (an
advisory lock the operating system releases when the process ends, however it ends), so that a second
run into the same folder stops in one line instead of writing over the first.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from runner.infra.checkpoint import checkpoints_in
from common.errors import UserError
from runner.training.resume import MUST_MATCH, differences, earlier_results, progress_file, refuse_unless_overwrite

OWNER = "run.json"            # in --model-dir: the run the folder belongs to
LOCK = ".run.lock"            # in --model-dir while a run holds it
MASKS = "masks_epoch*.png"    # the --save-masks pictures a run writes beside its checkpoints


def owner_record(run_id: str, args: argparse.Namespace) -> dict:
    """What run.json says: the id, and the method, seed and settings' hash that name the run to a person."""
    settings = {k: getattr(args, k, None) for k in MUST_MATCH}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return {"run_id": run_id, "method": args.method, "seed": args.seed, "settings_sha256": digest,
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def read_owner(model_dir: Path) -> dict | None:
    """The folder's run.json, None where there is none."""
    path = model_dir / OWNER
    if not path.is_file():
        return None
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} (the record of the run this folder belongs to): {exc}; "
                        "move the folder away or choose another --model-dir") from None
    if not isinstance(owner, dict) or not isinstance(owner.get("run_id"), str):
        raise UserError(f"{path} is not a run record (no run_id); move it away or choose another --model-dir")
    return owner


def describe(owner: dict) -> str:
    return (f"run {owner['run_id'][:8]} ({owner.get('method')}, seed {owner.get('seed')}, started "
            f"{owner.get('started_at', '?')})")


def read_results(path: Path) -> dict:
    """A results JSON read to learn whose it is."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} to tell which run it belongs to ({exc}); move it away, choose "
                        "another --results, or replace it with --overwrite") from None
    if not isinstance(results, dict):
        raise UserError(f"{path} is not a results file of ours (not a JSON object); move it away, choose "
                        "another --results, or replace it with --overwrite")
    return results


def results_belong(results: dict, run_id: str | None, ckpt: dict) -> bool:
    """Whether a results record is the one of the run `run_id` whose checkpoint is `ckpt`: by the id both
    carry; for a record or checkpoint written before runs had ids, by the same seed and settings."""
    if results.get("run_id") and run_id:     # run_id is the checkpoint's own where it carries one
        return results["run_id"] == run_id
    saved, theirs = ckpt.get("args") or {}, results.get("args")
    if not isinstance(theirs, dict) or "seed" not in saved or saved.get("seed") != theirs.get("seed"):
        return False
    return not differences(saved, argparse.Namespace(**{k: theirs.get(k) for k in MUST_MATCH}))


def run_files(model_dir: Path, results: Path | None, keep: Path | None = None) -> list[Path]:
    """Every file a run writes in its folder (checkpoints, pictures, run.json) and at its --results (the
    results and the evaluation's progress; None: not those); `keep`: one checkpoint to leave out."""
    found = checkpoints_in(model_dir)
    if model_dir.is_dir():
        found += sorted(model_dir.glob(MASKS)) + [p for p in (model_dir / OWNER,) if p.is_file()]
    if results is not None:
        found += [p for p in (results, progress_file(results)) if p.exists()]
    keep = keep.resolve() if keep else None
    return [p for p in dict.fromkeys(found) if p.resolve() != keep]


@dataclass
class Claim:
    """What `claim` found: the id this run writes under, the files of another run --overwrite replaces
    (all of them, once the data are loaded), whether run.json is to be written, and whether the
    results file there already is this run's."""
    run_id: str | None
    replace: list[Path] = field(default_factory=list)
    write_owner: bool = False
    results_ours: bool = False


def claim(args: argparse.Namespace, model_dir: Path, results: Path, ckpt_path: str | None,
          ckpt: dict | None) -> Claim:
    """Check, before anything is written or deleted, that the files at this run's paths are its own
    (fresh runs, --resume CKPT, --resume auto and --eval-only alike); another run's: one line, unless
    --overwrite."""
    if args.eval_only:           # writes its results only; its run is the one whose weights it evaluates
        found = earlier_results(results)
        refuse_unless_overwrite(found, args.overwrite, "this evaluation")
        return Claim(ckpt.get("run_id") if ckpt else None, found)
    owner = read_owner(model_dir)
    if ckpt is None:
        found = run_files(model_dir, results)
        # run.json alone: a run killed before its first checkpoint, with nothing to continue or lose.
        refuse_unless_overwrite(found if found != [model_dir / OWNER] else [], args.overwrite, "this run")
        return Claim(uuid.uuid4().hex, found, write_owner=True)
    inside = Path(ckpt_path).resolve().parent == model_dir.resolve()
    run_id = ckpt.get("run_id") or (owner["run_id"] if owner and inside else None) or uuid.uuid4().hex
    if owner is not None and owner["run_id"] != run_id and inside:
        raise UserError(f"{model_dir} mixes two runs: it belongs to {describe(owner)}, its checkpoint {ckpt_path} "
                        f"to run {run_id[:8]}; move one run's files to a folder of its own")
    foreign = []
    if owner is not None and owner["run_id"] != run_id:
        foreign = run_files(model_dir, None, keep=Path(ckpt_path))
        whose = describe(owner)
    elif owner is None and not inside and checkpoints_in(model_dir):
        foreign = run_files(model_dir, None)
        whose = "another run (written before runs had ids)"
    # Another run's results at --results (with their evaluation's progress); a progress file alone is the
    # evaluation's own to continue or replace (EvalProgress keys it by the weights).
    ours = results.exists() and results_belong(read_results(results), run_id, ckpt)
    stray = [p for p in (results, progress_file(results)) if p.exists()] if results.exists() and not ours else []
    if (foreign or stray) and not args.overwrite:
        what = f"--model-dir {model_dir} holds the files of {whose}" if foreign else \
            f"{results} holds the results of another run"
        raise UserError(f"cannot continue {ckpt_path} there: {what}; choose another --model-dir / --results, "
                        "or replace that run's files with --overwrite")
    return Claim(run_id, foreign + stray, write_owner=owner is None or owner["run_id"] != run_id, results_ours=ours)


@contextlib.contextmanager
def release_on_failure(owned: Claim, model_dir: Path, main: bool = True):
    """A run that fails before its first checkpoint leaves no run.json of its own behind, so the folder is
    free again (and RunLock removes it if it made it and nothing else is there)."""
    try:
        yield
    except BaseException:
        if main and owned.write_owner and not checkpoints_in(model_dir):
            (model_dir / OWNER).unlink(missing_ok=True)
        raise


# --- one run at a time in a folder ------------------------------------------------------------------
try:
    import fcntl
except ImportError:           # Windows: no advisory locks here, the ownership checks still hold
    fcntl = None


class RunLock(contextlib.AbstractContextManager):
    """Hold `paths` (lock files) for a run's life: each is created and locked with flock, so a second
    run asking for one stops with a line naming the holder; the operating system releases the lock
    when the process ends, also on SIGKILL, so a dead run's lock file is taken over, never waited for.
    The folders it had to make are removed again on exit when the run left nothing in them (a run that
    failed before writing). `hold=False` (torchrun's other ranks): nothing is locked or made."""

    def __init__(self, paths: list[Path], hold: bool = True) -> None:
        self.paths, self.hold = list(dict.fromkeys(paths)), hold
        self.held: list[tuple[Path, int]] = []
        self.made: list[Path] = []

    def __enter__(self) -> "RunLock":
        if not self.hold:
            return self
        try:
            for path in self.paths:
                self._make(path.parent)
                self.held.append((path, self._acquire(path)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for path, fd in reversed(self.held):
            with contextlib.suppress(OSError):
                path.unlink()
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self.held = []
        for folder in reversed(self.made):        # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()                    # only when empty

    def _make(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for f in reversed(missing):
            try:
                f.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise UserError(f"cannot write to {f}: {exc.strerror or exc}") from None
            self.made.append(f)

    @staticmethod
    def _acquire(path: Path) -> int:
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise UserError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
            if fcntl is None:
                return fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise UserError(f"another run is writing into {path.parent} ({holder}); wait for it to end, or "
                                "choose another --model-dir / --results") from None
            try:                  # the last holder may have removed the file between our open and our lock
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}, since {started}".encode())
        return fd


def lock_files(model_dir: Path | None, results: Path) -> list[Path]:
    """The locks a run holds: its --model-dir's (None: --eval-only writes none there) and, where the
    results go elsewhere, one beside the results file."""
    locks = [model_dir / LOCK] if model_dir is not None else []
    if model_dir is None or results.parent.resolve() != model_dir.resolve():
        locks.append(results.with_name(f".{results.name}.lock"))
    return locks
