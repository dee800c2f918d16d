"""What --resume, --resume auto and a fresh run check before they touch anything: that a checkpoint
belongs to this command line, and that a fresh run does not write over another run's files; and the
state that continues an epoch a signal stopped (Position, kept by an epoch's Tally)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from runner.cli.settings import EARLIER_DEFAULTS, flag_names, must_match
from runner.infra.checkpoint import progress_name, rng_state, save_atomic, set_rng_state
from runner.infra.distributed import Dist
from common.errors import NonFiniteLoss, UserError
from runner.infra.provenance import git_commit, project_path, source_changes
from part import VARIANTS

# The settings that decide what is trained, epoch by epoch (Role.TRAINING and Role.REWEIGHTING in
# runner/cli/settings.py): a checkpoint is continued only with the same values (--resume-anyway overrides, and
# the results record it). --epochs is not one of them: the learning rate of an epoch does not depend
# on it, so a larger value trains on.
MUST_MATCH = must_match()
SCRIPTS = {k: m.script for k, m in VARIANTS.items()}


def flag(key: str) -> str:
    return "processes (torchrun)" if key == "world_size" else flag_names().get(key, "--" + key.replace("_", "-"))


def differences(saved: dict, args: argparse.Namespace) -> dict[str, list]:
    """{setting: [checkpoint value, value now]} for every MUST_MATCH setting that differs."""
    now = vars(args)
    old = {k: saved.get(k, EARLIER_DEFAULTS.get(k)) for k in MUST_MATCH}
    return {k: [old[k], now.get(k)] for k in MUST_MATCH
            if json.dumps(old[k], sort_keys=True) != json.dumps(now.get(k), sort_keys=True)}


def _show(key: str, value: object) -> str:
    if key == "method":
        return SCRIPTS.get(str(value), str(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def check_resume(ckpt: dict, path: str, args: argparse.Namespace) -> dict[str, list]:
    """Refuse a checkpoint made with other settings (naming each difference) unless --resume-anyway;
    return the differences allowed."""
    diff = differences(ckpt.get("args", {}), args)
    position = ckpt.get("position")
    for key, what in (("batch_size", "another --batch-size"), ("world_size", "another number of processes")):
        if position and key in diff:
            raise UserError(f"cannot continue {path} with {what}: it stopped inside epoch {position['epoch']} "
                            f"after {position['batches']} batches ({flag(key)} {diff[key][0]} then, "
                            f"{diff[key][1]} now)")
    if diff and not args.resume_anyway:
        named = "; ".join(f"{'the script' if k == 'method' else flag(k)} {_show(k, old)} in the checkpoint, "
                          f"{_show(k, new)} now" for k, (old, new) in diff.items())
        raise UserError(f"checkpoint {path} was made with other settings: {named}; give the same flags, or "
                        "--resume-anyway to continue with the new ones")
    done = int(ckpt.get("epoch", 0)) + (1 if position else 0)
    if done > args.epochs:
        raise UserError(f"checkpoint {path} is past --epochs {args.epochs} (it holds epoch {done})")
    return diff


def data_identity(train_split) -> dict:
    """What a checkpoint's training data were, independent of where they lie: the sha256 of the source
    (runner.data.sources), the image count and the sha256 of the training subset's indices (None: all)."""
    indices = train_split.indices
    return {"sha256": (train_split.source or {}).get("sha256"), "train_images": len(train_split),
            "train_indices_sha256": None if indices is None else
            hashlib.sha256(indices.astype(np.int64).tobytes()).hexdigest()}


def check_same_data(ckpt: dict, path: str, now: dict, args: argparse.Namespace) -> dict[str, list]:
    """Refuse to continue a checkpoint on other training data than its own (another source, another
    subset) unless --resume-anyway, which records the difference; the same data at another path is
    the same data. A checkpoint written before checkpoints recorded their data is not checked."""
    then = ckpt.get("data")
    if not then or then == now:
        return {}
    changed = [k for k in now if then.get(k) != now[k]]
    if not args.resume_anyway:
        said = {"sha256": "other files (another sha256)", "train_images": f"{then.get('train_images')} training "
                f"images then, {now['train_images']} now", "train_indices_sha256": "another training subset"}
        raise UserError(f"checkpoint {path} was trained on other data than --data-dir {args.data_dir} holds: "
                        f"{'; '.join(said[k] for k in changed)}; give the data it was trained on, or "
                        "--resume-anyway to continue on these")
    return {"data": [then, now]}


def progress_file(results: Path) -> Path:
    """Where the evaluation keeps its per-batch progress: beside the results JSON."""
    return results.with_name(progress_name(results))


def earlier_results(results: Path) -> list[Path]:
    """What an evaluation would write over: the results file (its progress file is its own to continue);
    a run's files: runner.training.ownership.run_files."""
    return [results] if results.exists() else []


def refuse_unless_overwrite(found: list[Path], overwrite: bool, what: str) -> None:
    """Stop (exit 2, naming them) unless --overwrite."""
    if found and not overwrite:
        hint = ("choose another --results" if what == "this evaluation" else
                "continue that run with --resume auto, choose another --model-dir / --results")
        raise UserError(f"{what} would write over the files of another run: {_names(found)}; {hint}, "
                        "or replace them with --overwrite")


def remove(found: list[Path]) -> None:
    """--overwrite: the earlier run's files go once the new run is ready to start."""
    for p in found:
        p.unlink(missing_ok=True)
    if found:
        print(f"--overwrite: removed {_names(found)}", flush=True)


def _names(found: list[Path]) -> str:
    return ", ".join(str(p) for p in found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")


def check_writable(*folders: Path, create: bool = True) -> None:
    """Write a probe file into each folder (creating it), before any training starts. With
    create=False nothing is left behind: a folder that does not exist yet is probed by making and
    removing a folder in its nearest existing parent (the check that runs before the data load)."""
    for folder in dict.fromkeys(folders):
        try:
            if create:
                folder.mkdir(parents=True, exist_ok=True)
            existing = folder
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                raise NotADirectoryError(f"{existing} is not a folder")
            if existing == folder:
                fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
                os.close(fd)
                os.unlink(probe)
            else:
                os.rmdir(tempfile.mkdtemp(prefix=".write-probe.", dir=existing))
        except OSError as exc:
            raise UserError(f"cannot write to {folder}: {exc.strerror or exc}") from None


@dataclass
class Position:
    """Where a signal stopped an epoch: batches done, the running sums so far, the RNG states then."""
    epoch: int
    batches: int
    seen: int
    loss_sum: torch.Tensor      # float64 scalars, as train_epoch keeps them
    high_sum: torch.Tensor
    seconds: float
    rng: dict

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "batches": self.batches, "seen": self.seen, "loss_sum": self.loss_sum.cpu(),
                "high_sum": self.high_sum.cpu(), "seconds": self.seconds}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "Position | None":
        p = ckpt.get("position")
        return None if p is None else cls(rng=ckpt["rng"], **p)


class EpochStopped(Exception):
    """A signal stopped train_epoch after a batch; `position` is what continues it."""

    def __init__(self, signum: int, position: Position, batches: int) -> None:
        super().__init__(signum)
        self.signum, self.position, self.batches = signum, position, batches


class Tally:
    """An epoch's running sums, kept on the device (one host sync per epoch rather than one per
    batch): loss x images, full-budget share x images (`epsilon`: the full budget, None: not
    tracked), images seen, and the first batch whose loss is not finite (-1: none)."""

    def __init__(self, device: torch.device, epsilon: float | None, position: Position | None = None) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=device)
        self.device, self.epsilon = device, epsilon
        self.loss = position.loss_sum.to(device) if position else zero.clone()
        self.high = position.high_sum.to(device) if position else zero.clone()
        self.seen = position.seen if position else 0
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, batch_idx: int, loss: torch.Tensor, eps, n: int) -> None:
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss.detach()), batch_idx, self.first_bad)
        self.loss += loss.detach().double() * n
        self.seen += n
        if self.epsilon is not None:
            self.high += (eps == self.epsilon).double().mean() * n

    def check_finite(self, dist: Dist, epoch: int) -> None:
        dist.max_(self.first_bad)
        if int(self.first_bad) >= 0:
            raise NonFiniteLoss(epoch, int(self.first_bad))

    def position(self, epoch: int, batches: int, seconds: float) -> Position:
        return Position(epoch, batches, self.seen, self.loss, self.high, seconds, rng_state())

    def totals(self, dist: Dist, epoch: int) -> tuple[float, float | None]:
        """(mean loss, full-budget share or None) over all ranks; stops on a non-finite loss."""
        counts = torch.tensor([self.seen], dtype=torch.float64, device=self.device)
        dist.sum_(self.loss, self.high, counts)
        self.check_finite(dist, epoch)
        seen = int(counts.item())
        return self.loss.item() / seen, None if self.epsilon is None else self.high.item() / seen


# --- a trainer's checkpoints ------------------------------------------------------------------
class Checkpointed(Protocol):
    """What a checkpoint is written from and restored into (runner.training.trainer.Trainer)."""
    def state_dict(self) -> dict: ...
    def budget_state(self) -> dict | None: ...
    def load_state_dict(self, state: dict, path: str, budget: dict | None) -> None: ...


def save_checkpoint(trainer: Checkpointed, dist: Dist, path: Path, epoch: int,
                    position: Position | None = None) -> None:
    """`epoch`: the epochs complete; `position`: how far the next one got (a signal stopped it).
    Under torchrun every rank calls it: rank 0 writes, with each rank's RNG states, position and
    masks in `ranks`, so that each continues its own stream."""
    rng = position.rng if position else rng_state()
    budget = trainer.budget_state()
    ranks = None
    if dist.parallel:
        ranks = dist.gather({"rng": rng, "position": position.to_dict() if position else None, "budget": budget})
    if dist.main:
        state = {**trainer.state_dict(), "epoch": epoch, "rng": rng}
        if position is not None:
            state["position"] = position.to_dict()
        if budget is not None:
            state["budget"] = budget
        if ranks is not None:
            state["ranks"] = ranks
        save_atomic(state, path)
    dist.barrier()


def restore_checkpoint(trainer: Checkpointed, dist: Dist, ckpt: dict, path: str, differences: dict,
                       data_dir: str | None = None) -> tuple[int, Position | None]:
    """Load a checkpoint of ours: (epochs complete, the position inside the next one or None); the
    resume is recorded with the commit and the data folder it continued with."""
    missing = [k for k in ("optimizer", "epoch", "rng") if k not in ckpt]
    if missing:
        raise UserError(f"cannot resume from {path}: it holds weights only (no {', '.join(missing)})")
    # This process's RNG states, position and masks: the checkpoint's own with one process, its
    # `ranks` entry under torchrun. A checkpoint of another process count (--resume-anyway, at an
    # epoch boundary) was sharded otherwise: its streams start afresh and its masks are recomputed.
    own = None
    if ckpt.get("args", {}).get("world_size", 1) == dist.world:
        own = ckpt["ranks"][dist.rank] if dist.parallel else ckpt
    position = Position.from_checkpoint(own) if own else None
    resumes = list(ckpt.get("resumes", [])) + [
        {"checkpoint": project_path(path), "epoch": int(ckpt["epoch"]),
         "batches": position.batches if position else 0, "differences": differences,
         "data_dir": data_dir,           # where its data were read from (the same data may move)
         "git_commit": git_commit(), "source_changes": source_changes()}]      # the code it continued with
    trainer.load_state_dict({**ckpt, "resumes": resumes}, path, own.get("budget") if own else None)
    if own and position is None:
        set_rng_state(own["rng"])        # a mid-epoch position sets it after skipping its batches
    return int(ckpt["epoch"]), position
