"""A run of train_eval_part*.py: seed, data, model and trainer (`prepare`); which checkpoint it starts from
(a fresh run, --resume, --resume auto, --eval-only with the settings its checkpoint gives), the checks before
any data are loaded, the training epochs, the evaluation and the results JSON (`run`)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from models import MODEL_DIR_NAMES
from models.syncbn import global_batch_norm
from models.zoo import build_model
from part import VARIANTS
from runner.data import DataSettings
from runner.data.datasets import DATASETS
from runner.data.loaders import ArraySplit, make_loader
from runner.data.sources import load_splits
from runner.data.split import AtMost, Split
from runner.evaluation import EvalSettings
from runner.evaluation.evaluate import EvalProgress, evaluate
from runner.infra.checkpoint import (check_fits, checkpoints_in, load_checkpoint, load_model_state, newest_loadable,
                                    remove_stale_temporaries)
from runner.infra.distributed import Dist, process_group
from common.errors import UserError
from runner.infra.files import write_json
from runner.infra.interrupt import Interrupted, StopRequest
from common.rng import RANK_SEED_STRIDE, set_seed
from runner.cli.args import study_data_errors
from runner.registry import EVAL_ONLY_SOURCES, study_flags
from runner.training.record import eval_key, results_record
from runner.training.ownership import OWNER, Claim, RunLock, claim, lock_files, owner_record, release_on_failure
from runner.training.resume import (Position, check_resume, check_same_data, check_writable, flag, progress_file,
                                   remove, restore_checkpoint)
from runner.training.trainer import Trainer, train_epochs


def pick_device(choice: str, dist: Dist = Dist()) -> torch.device:
    """The device of this process: under torchrun, GPU LOCAL_RANK of its machine."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but CUDA is not available here")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank) if dist.launched else torch.device("cuda")


def default_model_dir(args: argparse.Namespace) -> str:
    """checkpoint/<data>/<model>/<method>[-baseline]/seed<N>: the official folder, one per seed and for
    the --no-reweight baseline apart, so that two seeds of one command never share a folder."""
    method = VARIANTS[args.method].dir_name + ("-baseline" if args.no_reweight else "")
    return os.path.join("checkpoint", args.data, MODEL_DIR_NAMES[args.model], method, f"seed{args.seed}")


def prepare(args: argparse.Namespace, dist: Dist = Dist(),
            splits: tuple[Split, Split] | None = None) -> tuple[Trainer, DataLoader, Split, Split]:
    """Seed, data, model and trainer for `args` (shared by run() and bench/). `splits`: the (train,
    test) splits already loaded for these args (the bench loads them once for all its cases)."""
    device = pick_device(args.device, dist)
    if args.threads:            # else torch's own: the cores (torchrun: OMP_NUM_THREADS, 1 per process)
        torch.set_num_threads(args.threads)
    set_seed(args.seed + dist.rank * RANK_SEED_STRIDE)
    d = DataSettings.from_args(args)
    train_split, test_split = splits or load_splits(d.data, d.data_dir, d.download, d.train_subset,
                                                    eval_test_subset(args, d), need_train=not args.eval_only)
    num_classes = len(test_split.classes)      # DATASETS[args.data].classes: load_splits checks it
    model = build_model(args.model, num_classes, image_size=test_split.image_size)
    if args.sync_bn:
        model = global_batch_norm(model)
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True     # fixed shapes: let cudnn pick the fastest kernels
    progress = not args.no_progress and sys.stderr.isatty() and dist.main
    trainer = Trainer(args, model, train_split, device, progress, test_split, dist)
    test_loader = make_loader(ArraySplit(test_split), d.batch_size, None, d.workers)
    return trainer, test_loader, train_split, test_split


def eval_test_subset(args: argparse.Namespace, d: DataSettings) -> int | None:
    """--eval-only's test subset, unless given, is a cap (the checkpoint's, or the CPU default)."""
    if args.eval_only and d.test_subset and "test_subset" not in getattr(args, "given", ()):
        return AtMost(d.test_subset)
    return d.test_subset


def _checkpoint_to_start_from(args: argparse.Namespace, model_dir: Path, results_path: Path,
                              device: torch.device, loaded: dict | None = None) -> tuple[str | None, dict | None]:
    """The checkpoint --eval-only / --resume / --resume auto names, loaded (--eval-only's: `loaded`, if
    eval_only_settings loaded it already); (None, None) for a fresh run."""
    if args.eval_only:
        return args.eval_only, loaded if loaded is not None else load_checkpoint(args.eval_only, device)
    if args.resume == "auto":
        found = newest_loadable(model_dir, device)
        if found is not None:
            return str(found[0]), found[1]
        unusable = checkpoints_in(model_dir)
        if unusable and not args.overwrite:
            raise UserError(f"--resume auto: no checkpoint in {model_dir} can be continued (every one was skipped "
                            "above); to start this run afresh there, add --overwrite (it removes them), or move them "
                            "away, or choose another --model-dir")
        print(f"--resume auto: no checkpoint to continue in {model_dir}; starting a fresh run", flush=True)
    elif args.resume:
        return args.resume, load_checkpoint(args.resume, device)
    return None, None


def run(args: argparse.Namespace) -> dict:
    """Train (or continue, or only evaluate), evaluate and write the results. SIGTERM / SIGINT stop it
    after the current batch with a checkpoint (Interrupted); the evaluation keeps its progress."""
    with StopRequest() as stop, process_group(args.device) as dist, contextlib.ExitStack() as quiet:
        if not dist.main:
            # Under torchrun rank 0 speaks for all: log rows, accuracies and messages once.
            quiet.enter_context(contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w"))))
        return _run(args, stop, dist)


# What --eval-only takes from the checkpoint it evaluates, unless given: the network and how it ran,
# the data it was trained and tested on, the attack step, and what cam-info reads (with the flags of the
# studies' evaluations: runner.registry.study_flags).
FROM_CHECKPOINT = ("model", "channels_last", "precision", "data", "test_subset", "aa_subset", "step_size", "cam",
                   "epsilon", "low_epsilon", "mask_rule", "top_share")
# --eval-only on a CPU without --eval / --test-subset: what finishes in minutes there.
CPU_EVAL, CPU_EVAL_IMAGES = ["natural", "pgd20"], 1000


def eval_only_settings(args: argparse.Namespace, dist: Dist) -> dict:
    """--eval-only CKPT with nothing else: the settings FROM_CHECKPOINT (and its --data-dir, where that
    still exists) from the checkpoint's own record; on a CPU natural and PGD-20 on a fixed 1,000 test
    images unless --eval / --test-subset say otherwise. Every flag given wins. Returns the checkpoint,
    loaded to this process's device (it is not loaded again)."""
    given = set(getattr(args, "given", ()))
    device = pick_device(args.device, dist)
    ckpt = load_checkpoint(args.eval_only, device)
    saved = ckpt.get("args") or {}
    taken = [k for k in FROM_CHECKPOINT + tuple(f.dest for f, _ in study_flags())
             if k not in given and k in saved and saved[k] != getattr(args, k, None)]
    for k in taken:
        setattr(args, k, saved[k])
    if "data_dir" not in given and saved.get("data_dir") and Path(saved["data_dir"]).exists():
        args.data_dir = saved["data_dir"]
        taken.append("data_dir")
    if taken:
        print("--eval-only: from the checkpoint " + ", ".join(f"{flag(k)} {getattr(args, k)}" for k in taken),
              flush=True)
    for message in study_data_errors(args, DATASETS[args.data].extras):
        raise UserError(f"{message} (the checkpoint's data)")
    cpu_defaults(args, device)
    return ckpt


def cpu_defaults(args: argparse.Namespace, device: torch.device) -> None:
    """--eval-only on a CPU without --eval / --test-subset: natural and PGD-20 on a fixed 1,000 test images."""
    given = set(getattr(args, "given", ()))
    if device.type == "cpu" and "eval" not in given:
        args.eval = list(CPU_EVAL)
        if "test_subset" not in given and args.test_subset is None:
            args.test_subset = CPU_EVAL_IMAGES
        print(f"--eval-only on the CPU: {', '.join(args.eval)} on {args.test_subset} fixed test images by default "
              "(MMA and AutoAttack of all 10,000 take hours on a CPU); --eval and --test-subset choose more", flush=True)


def _run(args: argparse.Namespace, stop: StopRequest, dist: Dist) -> dict:
    """Check everything that needs no data, load, train (or continue, or only load the weights to
    evaluate), evaluate, and write the results."""
    source = next((f for prefix, f in EVAL_ONLY_SOURCES.items() if (args.eval_only or "").startswith(prefix)), None)
    if source is not None:                   # --eval-only robustbench:NAME (exchange/eval_only.py registers it)
        return source(args, stop, dist)
    loaded = eval_only_settings(args, dist) if args.eval_only else None
    model_dir = Path(args.model_dir or default_model_dir(args))
    results_path = results_file(args.results or model_dir / "results.json")
    if args.eval_only and not args.results and not args.model_dir:
        results_path = Path(args.eval_only).with_suffix(".eval.json")    # never a training run's results
    with RunLock(lock_files(None if args.eval_only else model_dir, results_path), hold=dist.main):
        return _run_in(args, stop, dist, loaded, model_dir, results_path)


def results_file(path: str | os.PathLike) -> Path:
    """--results: a file to write, refused in one line when it names a folder."""
    if Path(path).is_dir():
        raise UserError(f"--results {path} is a folder; name the results file, e.g. {Path(path) / 'results.json'}")
    return Path(path)


def _run_in(args: argparse.Namespace, stop: StopRequest, dist: Dist, loaded: dict | None, model_dir: Path,
            results_path: Path) -> dict:
    """_run with the run's folders held (RunLock)."""
    outputs = ([] if args.eval_only else [model_dir]) + [results_path.parent]
    ckpt_path, ckpt, differences, owned = _start_from(args, model_dir, results_path, outputs, dist, loaded)
    if ckpt is _FINISHED:
        return json.loads(results_path.read_text())
    trainer, test_loader, train_split, test_split = prepare(args, dist)
    trainer.run_id = owned.run_id
    if ckpt is not None and not args.eval_only:
        differences.update(check_same_data(ckpt, ckpt_path, trainer.trained_on, args))
    _claim(outputs, owned, args, model_dir, results_path, dist)
    with release_on_failure(owned, model_dir, dist.main):
        _announce(args, trainer, train_split, test_split, ckpt_path)
        if args.eval_only:
            load_model_state(trainer.model, ckpt, ckpt_path)
            epochs_done = int(ckpt.get("epoch", 0))
            # The weights' own history: the commit their run started at and each resume's (the evaluation's
            # commit is the results' git_commit).
            trainer.started = ckpt.get("started", {"git_commit": None, "source_changes": None})
            trainer.resumes = list(ckpt.get("resumes", []))
        else:
            start, position = (1, None) if ckpt is None else _continue(trainer, ckpt, ckpt_path, differences)
            if stop.signum is not None:
                raise Interrupted(stop.signum, "before training started (nothing to save)", [])
            epochs_done = train_epochs(trainer, start, position, stop, model_dir)
        key = eval_key(trainer.model, test_split, args, trainer.num_classes)
        record = EvalProgress(progress_file(results_path), key)
        try:
            ev = evaluate(trainer.model, test_loader, args.eval, EvalSettings.from_args(args), trainer.num_classes,
                          trainer.progress, record=record, stop=stop, dist=dist)
        except Interrupted as exc:
            exc.where += f": progress kept in {record.path}"
            if not args.eval_only:
                exc.resume_args = ["--resume", str(model_dir / f"epoch{args.epochs}.pt")]
            raise
        return write_results(results_record(args, trainer, ev, epochs_done, model_dir, results_path, train_split,
                                             test_split), results_path, record, dist)


def write_results(results: dict, path: Path, record: EvalProgress, dist: Dist) -> dict:
    """The results JSON written by rank 0, the evaluation's progress file removed."""
    if dist.main:
        write_json(results, path)
        record.remove()
        print(f"results written to {path}", flush=True)
    dist.barrier()
    return results


_FINISHED = object()      # _start_from's answer for a finished run under --resume auto


def _start_from(args: argparse.Namespace, model_dir: Path, results_path: Path, outputs: list[Path],
                dist: Dist, loaded: dict | None = None) -> tuple[str | None, dict | None, dict, Claim]:
    """The checkpoint to start from (None for a fresh run), checked against this command line, the
    model it must fit, the files already at its paths (whose they are: `Claim`) and the folders it will
    write, before any data are loaded (tens of seconds for CIFAR-10); (path, _FINISHED, {}, claim) when
    --resume auto finds this run finished."""
    ckpt_path, ckpt = _checkpoint_to_start_from(args, model_dir, results_path, pick_device(args.device, dist),
                                                loaded)
    chosen = dist.gather(ckpt_path)
    if len(set(chosen)) > 1:
        raise UserError(f"the processes would start from different checkpoints ({', '.join(map(str, chosen))}); "
                        "--model-dir must be one shared folder for all of them")
    differences = check_resume(ckpt, ckpt_path, args) if ckpt is not None and not args.eval_only else {}
    owned = claim(args, model_dir, results_path, ckpt_path, ckpt)
    if (args.resume == "auto" and ckpt is not None and "position" not in ckpt and ckpt["epoch"] == args.epochs
            and owned.results_ours and not progress_file(results_path).exists()):
        print(f"--resume auto: this run is finished ({ckpt_path}); its results are in {results_path}", flush=True)
        return ckpt_path, _FINISHED, {}, owned
    if ckpt is not None:
        check_fits(ckpt, ckpt_path, args.model, DATASETS[args.data].classes, DATASETS[args.data].image_size)
    check_writable(*outputs, create=False)
    return ckpt_path, ckpt, differences, owned


def _claim(outputs: list[Path], owned: Claim, args: argparse.Namespace, model_dir: Path, results_path: Path,
           dist: Dist) -> None:
    """Make the output folders; once every rank has read what it needs, rank 0 removes the files of
    another run this one replaces (only there with --overwrite: all of them) and dead writers'
    temporaries, and writes the folder's run.json."""
    check_writable(*outputs)
    dist.barrier()
    if dist.main:
        remove(owned.replace)
        remove_stale_temporaries(None if args.eval_only else model_dir, results_path)
        if owned.write_owner:
            write_json(owner_record(owned.run_id, args), model_dir / OWNER)


def _announce(args: argparse.Namespace, trainer: Trainer, train_split: Split, test_split: Split,
              ckpt_path: str | None) -> None:
    method, dist = trainer.method, trainer.dist
    ranks = f" | {dist.world} processes, {args.batch_size // dist.world} images each per batch" if dist.parallel else ""
    label = f"{method.name}{' (baseline: ' + method.base + ')' if args.no_reweight else ''}"
    if args.eval_only:
        print(f"evaluating {ckpt_path} | {label} | {args.data} ({len(test_split)} test) | {args.model} | "
              f"{trainer.device}", flush=True)
    else:
        print(f"{label} | {args.data} ({len(train_split)} train / {len(test_split)} test) | {args.model} | "
              f"{trainer.device} | augmentation {args.augmentation}{ranks}", flush=True)
    if args.dataset_overrides:
        applied = ", ".join(f"{k} {v:.6g}" for k, v in args.dataset_overrides.items())
        print(f"{args.data} settings of the official scripts applied: {applied} "
              "(give a flag to override it)", flush=True)


def _continue(trainer: Trainer, ckpt: dict, ckpt_path: str, differences: dict) -> tuple[int, Position | None]:
    """Restore a checkpoint of ours; (the epoch to start, the position inside it or None)."""
    epochs_done, position = restore_checkpoint(trainer, trainer.dist, ckpt, ckpt_path, differences,
                                               str(trainer.command_line.data_dir))
    where = f" and {position.batches} batches of epoch {epochs_done + 1}" if position else ""
    allowed = "; allowed differences (--resume-anyway): " + ", ".join(
        f"{flag(k)} {old} -> {new}" for k, (old, new) in differences.items()) if differences else ""
    print(f"resumed from {ckpt_path} after epoch {epochs_done}{where}{allowed}", flush=True)
    return epochs_done + 1, position
