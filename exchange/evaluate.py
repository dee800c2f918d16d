"""--eval-only robustbench:NAME of the three scripts: a RobustBench zoo model through every evaluation of
ours (the runner's), with a results record that names the model. Registered with the runner as the
source of the `robustbench:` prefix by exchange/eval_only.py, which the scripts import."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cam.maps import CAM_METHODS
from common.errors import UserError
from exchange.robustbench import ZOO_PREFIX, load_zoo_model, zoo_file
from runner.data import DataSettings
from runner.data.loaders import ArraySplit, make_loader
from runner.data.sources import Split, load_splits
from runner.evaluation import EvalSettings
from runner.evaluation.evaluate import EvalProgress, evaluate
from runner.infra.distributed import Dist
from runner.infra.interrupt import Interrupted, StopRequest
from runner.registry import evaluations
from runner.training.ownership import RunLock, lock_files
from runner.training.record import eval_key, provenance
from runner.training.resume import check_writable, earlier_results, progress_file, refuse_unless_overwrite
from runner.training.run import cpu_defaults, eval_test_subset, pick_device, results_file, write_results


ZOO_EVAL_ARGS = ("eval_only", "zoo_dir", "cam_layer", "data", "data_dir", "test_subset", "aa_subset", "eval",
                 "eval_epsilon", "step_size", "eval_seeding", "cam", "low_epsilon", "cam_info_share", "info_maps",
                 "batch_size",
                 "device", "threads", "given")


def zoo_results_record(args: argparse.Namespace, zoo: dict, ev: dict, results_path: Path, train_split: Split,
                       test_split: Split, device: torch.device) -> dict:
    """The results JSON of a RobustBench zoo model's evaluation: the model (name, file, sha256,
    architecture, CAM layer, robustbench's version), the accuracies with their counts, where."""
    return {
        "method": f"RobustBench {zoo['name']}",
        "model": zoo,
        # What the evaluation read (the training and model flags have no meaning for a zoo model).
        "args": {**{k: v for k, v in vars(args).items() if k in ZOO_EVAL_ARGS}, "results": str(results_path)},
        **{k: ev.get(k) for k in evaluations()},
        "test_images": ev["total"],
        "images": ev["images"],
        "counts": ev["counts"],
        "seconds": {f"eval_{k}": v for k, v in ev["seconds"].items()},
        **provenance(args, device, train_split, test_split),
    }


def evaluate_zoo_model(args: argparse.Namespace, stop: StopRequest, dist: Dist) -> dict:
    """--eval-only robustbench:NAME: a RobustBench zoo model (exchange/robustbench.py, loaded by robustbench's
    own code from --zoo-dir) through every evaluation of ours; the CPU's defaults as for a checkpoint of
    ours; results to --results or beside the model's file (NAME.eval.json), naming the model, its file's
    sha256 and robustbench's version."""
    name = args.eval_only[len(ZOO_PREFIX):]
    device = pick_device(args.device, dist)
    results_path = results_file(args.results or zoo_file(name, args.zoo_dir).with_suffix(".eval.json"))
    with RunLock(lock_files(None, results_path), hold=dist.main):
        return _evaluate_in(args, stop, dist, name, device, results_path)


def _evaluate_in(args: argparse.Namespace, stop: StopRequest, dist: Dist, name: str, device: torch.device,
                           results_path: Path) -> dict:
    refuse_unless_overwrite(earlier_results(results_path), args.overwrite, "this evaluation")
    cpu_defaults(args, device)
    model, zoo = load_zoo_model(name, args.zoo_dir, not args.no_download, args.cam_layer)
    if "cam-info" in args.eval and args.cam in CAM_METHODS and zoo["cam_layer"] is None:
        raise UserError(f"--eval cam-info: no CAM layer is known for {name} ({zoo['architecture']}); name one with "
                        "--cam-layer, or use --map gradient")
    check_writable(results_path.parent)
    if args.threads:
        torch.set_num_threads(args.threads)
    d = DataSettings.from_args(args)
    train_split, test_split = load_splits(d.data, d.data_dir, d.download, None, eval_test_subset(args, d),
                                          need_train=False)
    model = model.to(device)
    num_classes = len(test_split.classes)
    print(f"evaluating RobustBench's {name} ({zoo['architecture']}, {zoo['file']}, sha256 {zoo['sha256'][:16]}…, "
          f"robustbench {zoo['robustbench']}) | {args.data} ({len(test_split)} test) | {device}", flush=True)
    record = EvalProgress(progress_file(results_path), eval_key(model, test_split, args, num_classes))
    progress = not args.no_progress and sys.stderr.isatty() and dist.main
    loader = make_loader(ArraySplit(test_split), d.batch_size, None, d.workers)
    try:
        ev = evaluate(model, loader, args.eval, EvalSettings.from_args(args), num_classes, progress, record=record,
                      stop=stop, dist=dist)
    except Interrupted as exc:
        exc.where += f": progress kept in {record.path}"
        raise
    return write_results(zoo_results_record(args, zoo, ev, results_path, train_split, test_split, device),
                          results_path, record, dist)
