"""What --resume, --resume auto and a fresh run check before they touch anything: that a checkpoint
belongs to this command line, and that a fresh run does not write over another run's files."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from utils.checkpoint import checkpoints_in, progress_name
from utils.errors import UserError

# The arguments that decide what is trained, epoch by epoch: a checkpoint is continued only with
# the same values (--resume-anyway overrides, and the results record it). --epochs is not one of
# them: the learning rate of an epoch does not depend on it, so a larger value trains on.
MUST_MATCH = ("method", "model", "data", "epsilon", "low_epsilon", "cam", "mask_rule", "region_eps", "random_share",
              "cam_refresh", "save_weights", "no_reweight", "clip_part_start", "attack", "beta", "batch_size",
              "warm_up", "lr", "adjust_first", "adjust_second", "momentum", "weight_decay", "num_steps",
              "step_size", "rand_init", "seed", "train_subset", "augmentation", "precision", "world_size", "sync_bn",
              "awp_gamma", "awp_warmup")
# What checkpoints written before a setting existed ran with.
EARLIER_DEFAULTS = {"world_size": 1, "sync_bn": False, "awp_gamma": 0.0, "awp_warmup": 0}
SCRIPTS = {"part": "train_eval_part.py", "part_t": "train_eval_part_t.py", "part_m": "train_eval_part_m.py"}


def flag(key: str) -> str:
    if key == "world_size":
        return "processes (torchrun)"
    return "--rand_init" if key == "rand_init" else "--" + key.replace("_", "-")


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


def progress_file(results: Path) -> Path:
    """Where the evaluation keeps its per-batch progress: beside the results JSON."""
    return results.with_name(progress_name(results))


def earlier_outputs(model_dir: Path, results: Path, eval_only: bool) -> list[Path]:
    """Files of another run that a fresh run (or evaluation) would write over."""
    if eval_only:      # an evaluation writes only the results (its progress file is its own to continue)
        return [results] if results.exists() else []
    return checkpoints_in(model_dir) + [p for p in (results, progress_file(results)) if p.exists()]


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
