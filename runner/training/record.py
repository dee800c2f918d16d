"""The results record of a run: the method, the arguments, the accuracies with their counts, seconds, the
history, the data it was computed on, the machine and the versions (`results_record`); the key an
evaluation's progress belongs to (`eval_key`)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from runner.data.split import Split, subset_indices
from runner.evaluation.evaluate import on_subset
from runner.infra.checkpoint import weights_fingerprint
from runner.infra.provenance import cores_available, cpu_model, git_commit, source_changes
from runner.registry import STUDY_EVALS, evaluations
from runner.training.resume import data_identity

if TYPE_CHECKING:
    from runner.training.trainer import Trainer


def package_versions() -> dict[str, str]:
    """The versions of the packages the numbers depend on (the two AutoAttacks, the CAM library)."""
    from importlib.metadata import PackageNotFoundError, version
    found = {}
    for name in ("torchvision", "torchattacks", "pyautoattack", "grad-cam", "numpy", "robustbench"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def data_record(train_split: Split, test_split: Split, args: argparse.Namespace) -> dict:
    """What the results were computed on: the source (layout, path, file count, sha256), the image
    counts, and the indices of any fixed subset."""
    record = {**(test_split.source or {}), "train_images": len(train_split), "test_images": len(test_split)}
    if test_split.indices is not None:
        record["test_indices"] = test_split.indices.tolist()
    subset = data_identity(train_split)["train_indices_sha256"]     # the training subset's int64 indices
    if subset is not None:
        record["train_indices_sha256"] = subset
    if any(on_subset(e) for e in args.eval) and args.aa_subset and args.aa_subset < len(test_split):
        record["aa_indices"] = subset_indices(len(test_split), args.aa_subset).tolist()
    return record


def eval_key(model: nn.Module, test_split: Split, args: argparse.Namespace, num_classes: int) -> dict:
    """What an evaluation's numbers depend on: the weights, the test images and the settings."""
    return {"weights": weights_fingerprint(model), "data": (test_split.source or {}).get("sha256"),
            "test_indices": None if test_split.indices is None else len(test_split.indices),
            "test_images": len(test_split), "eval_epsilon": args.eval_epsilon, "step_size": args.step_size,
            "aa_subset": args.aa_subset, "batch_size": args.batch_size, "num_classes": num_classes,
            **{k: v for e in args.eval if e in STUDY_EVALS for k, v in STUDY_EVALS[e].key(args).items()},
            **({"eval_seeding": args.eval_seeding} if args.eval_seeding != "batch" else {})}


def results_record(args: argparse.Namespace, trainer: Trainer, ev: dict, epochs_done: int, model_dir: Path,
                   results_path: Path, train_split: Split, test_split: Split) -> dict:
    """The results JSON: the method, the arguments, the accuracies, seconds, history, data, versions."""
    method, device = trainer.method, trainer.device
    seconds = {}
    for phase in ("warm-up", "part", "baseline"):
        rows = [r["seconds"] for r in trainer.history if r["phase"] == phase]
        if rows:
            seconds[f"train_{phase}"] = sum(rows)
    seconds.update({f"eval_{k}": v for k, v in ev["seconds"].items()})
    return {
        "method": method.label(args.no_reweight, args.mask_rule),
        "script": method.script,
        "run_id": trainer.run_id,          # the run whose weights these are (runner.training.ownership)
        # The folders and the loader used, also where the flags left them to their defaults.
        "args": {**vars(args), "model_dir": str(model_dir), "results": str(results_path),
                 "loader": trainer.loader_kind},
        "epochs_done": epochs_done,
        **{k: ev.get(k) for k in evaluations()},
        "test_images": ev["total"],
        "images": ev["images"],            # per evaluation: all test images, or --aa-subset for AutoAttack
        "counts": ev["counts"],
        "seconds": seconds,
        "history": trainer.history,
        "resumes": trainer.resumes,        # each with the commit it continued at
        "started": trainer.started,        # the commit the run started at (git_commit: the one that wrote this)
        **provenance(args, device, train_split, test_split),
    }


def provenance(args: argparse.Namespace, device: torch.device, train_split: Split, test_split: Split) -> dict:
    """Where the numbers were computed: the data, the device and machine, the versions, the code."""
    return {
        "data": data_record(train_split, test_split, args),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        # CPU numbers differ slightly between CPU models and thread counts (other kernels, other sums);
        # `kernels`: the vector instructions torch's CPU kernels use here (AVX2, AVX512, ...), which a
        # virtual machine's model name ("AMD EPYC") does not tell.
        "machine": {"cpu": cpu_model(), "kernels": torch.backends.cpu.get_cpu_capability(),
                    "cores": cores_available(), "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "source_changes": source_changes(),     # tracked source files not committed: [] for a clean tree
    }
