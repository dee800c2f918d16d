"""Every setting of a run and its role, torch-free and without the parser: the flags the three scripts
share (`declare_flags`: the official ones, same names and defaults, correctly typed, plus this
project's additions; the mask rules' flags come from `cam/rules.py`, the variants' from `part/__init__.py`),
and what each is to a run (`Role`). The parser
(`runner.cli.args`), the resume checks and the report's grouping all derive from this one list."""
from __future__ import annotations

import argparse
import enum
import functools
from collections.abc import Callable

from cam.maps import CAM_METHODS, MAPS
from cam.rules import RULES
from models import MODEL_NAMES
from common.argtypes import (boolean, budget, non_negative, non_negative_int, number, positive_budget,
                            positive_int, rate, seed_int, thread_count)
from part import VARIANTS, Variant
from runner.data.datasets import DATASETS
from runner.registry import DEFAULT_EVALS, EVAL_SEEDINGS, STUDY_EVALS, evaluations, study_flags


def eval_list(text: str) -> list[str]:
    """--eval: a comma list of the evaluations (runner/registry.py)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in evaluations()]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"invalid --eval {text!r}: a comma list of {','.join(evaluations())}")
    return items


class Role(enum.Enum):
    """What a setting is to a run: each flag declares one, and the resume checks and the report's
    grouping are derived from them (`must_match`, `report_ignores`, `reweighting_only`)."""
    TRAINING = "decides what is trained, epoch by epoch: a checkpoint continues only with the same value"
    REWEIGHTING = "TRAINING, but read only by the pixel reweighting: a baseline (--no-reweight) ignores it"
    RESULT = ("changes the results, not the recipe of an epoch (what is measured, the epoch count, how the "
              "same arithmetic is laid out): free on resume, yet runs differing in it are not averaged together")
    NONE = "where a run reads and writes, what it prints, side passes on their own streams: neither"


# Settings a run records that are not flags: the script, the process count torchrun gave, and the
# values a dataset forced (SVHN).
DERIVED_ROLES = {"method": Role.TRAINING, "world_size": Role.TRAINING, "dataset_overrides": Role.NONE,
                 "given": Role.NONE}
# What runs made before a setting existed ran with: the resume checks and the report's grouping fill a
# missing setting with it, so older checkpoints and results compare with newer ones. The flags of the
# registries' entries (a mask rule's) mean "not given" at their defaults, so their defaults are what
# earlier runs ran with: a new entry needs no line here.
EARLIER_DEFAULTS = {"world_size": 1, "sync_bn": False, "eval_seeding": "batch", "awp_gamma": 0.0, "awp_warmup": 0,
                    "attack": "pgd",      # PART-T / PART-M take --attack (pgd) only since the official lines do
                    **{f.dest: f.kwargs["default"] for rule in RULES.values() for f in rule.flags}}


def declare_flags(a: Callable[..., object], method: Variant) -> None:
    """Every flag of `method`'s script, as a(role, *names, **argparse keywords)."""
    T, R, S, N = Role.TRAINING, Role.REWEIGHTING, Role.RESULT, Role.NONE
    # The official flags.
    a(T, "--batch-size", type=positive_int, default=128, metavar="N", help="training batch size")
    a(S, "--epochs", type=positive_int, default=80, metavar="N", help="total epochs, warm-up included")
    a(T, "--weight-decay", "--wd", type=non_negative, default=2e-4, metavar="W", help="SGD weight decay")
    a(T, "--lr", type=rate, default=0.01, metavar="LR", help="learning rate")
    a(T, "--momentum", type=number(high=1.0, high_open=True), default=0.9, metavar="M",
      help="SGD momentum, in [0, 1)")
    a(N, "--no-cuda", action="store_true", help="disable CUDA (same as --device cpu)")
    # Budgets as fractions: argparse parses a string default like a given value, and --help shows 8/255.
    a(T, "--epsilon", type=budget, default="8/255", help="budget on important pixels")
    a(R, "--low-epsilon", type=budget, default="7/255", help="budget on the other pixels")
    a(T, "--num-steps", type=positive_int, default=10, help="attack steps during training")
    a(N, "--num-class", type=positive_int, default=None,
      help="number of classes (default: from the data; if given it must match the data)")
    a(T, "--rand_init", "--rand-init", type=boolean, default=True, metavar="BOOL",
      help="uniform random start of the PGD / MMA training attacks (false: start at x); TRADES and MART "
           "always start at x + 0.001 N(0, 1), as upstream")
    a(T, "--step-size", type=positive_budget, default="2/255", help="attack step size (training and PGD-20/MMA)")
    a(T, "--adjust-first", type=positive_int, default=60,
      help="lr x0.1 from this post-warm-up epoch (counted after the warm-up, as upstream)")
    a(T, "--adjust-second", type=positive_int, default=90, help="lr x0.01 from this post-warm-up epoch")
    a(T, "--seed", type=seed_int, default=1, metavar="S", help="random seed, in [0, 2**32 - 1]")
    a(N, "--log-interval", type=positive_int, default=100, metavar="N", help="batches between progress lines")
    a(N, "--model-dir", default=None,
      help=f"checkpoint folder (default ./checkpoint/<data>/<model>/{method.dir_name}[-baseline]/seed<N>)")
    a(N, "--save-freq", type=positive_int, default=10, metavar="N",
      help="checkpoint every N epochs (and at the end)")
    a(R, "--save-weights", type=positive_int, default=1, metavar="N",
      help="with --cam-refresh official: recompute the masks every N PART epochs, as upstream")
    a(T, "--data", default="CIFAR10", choices=tuple(DATASETS), help="dataset (runner/data/datasets.py)")
    a(T, "--model", default="resnet", choices=MODEL_NAMES,
      help="resnet (ResNet-18), wideresnet (WRN-34-10), smallcnn (TRADES small CNN, CPU-sized) or smallcnn-bn "
           "(a CPU-sized CNN with BatchNorm, the CPU-scale study's)")
    a(T, "--warm-up", type=non_negative_int, default=20, help=f"epochs of plain {method.base} before PART")
    a(R, "--cam", "--map", default="gradcam", choices=tuple(MAPS), metavar="NAME",
      help=f"the importance map the mask rule reads (cam/maps.py): a CAM method, one of {', '.join(CAM_METHODS)} "
           "(gradcam, xgradcam, layercam run natively, the others and lib-* through the grad-cam package); "
           "gradient (input-gradient saliency |dCE/dx|); box (the dataset's object box, where it has one); "
           "inverse-box (outside the box first, then random box pixels); random (a random value per pixel)")
    for f in method.flags:
        a(T, f.name, **f.kwargs)
    if method.key == "part":
        a(N, "--pre-trained", type=boolean, default=False, metavar="BOOL",
          help="the official flag: true trains PART on the ε maps an earlier official run stored in "
               "weighted_eps_list.npz (refused: this code writes none; --cam-refresh official pairs stored maps "
               "by batch index as upstream); false (the default) is accepted. Upstream's type=bool reads any "
               "non-empty value, false too, as true; here false is false")
    # This project's additions.
    a(N, "--data-dir", default="./data", help="dataset root, image-folder tree or .zip (see data/README.md)")
    a(N, "--no-download", action="store_true", help="never try to download a missing dataset")
    a(N, "--device", default="auto", choices=("auto", "cuda", "cpu"), help="where to train")
    a(R, "--mask-rule", default="official", choices=tuple(RULES),
      help="; ".join(f"{r.name}: {r.help}" for r in RULES.values()))
    for rule in RULES.values():
        for f in rule.flags:
            a(R, f.name, **f.kwargs)
    a(T, "--awp-gamma", type=budget, default=0.0, metavar="G",
      help="Adversarial Weight Perturbation (Wu et al. 2020) of size G relative to each weight's norm, in every "
           "phase (0: off; the AWP paper's 5e-3)")
    a(T, "--awp-warmup", type=non_negative_int, default=0, metavar="E",
      help="with --awp-gamma: the epoch AWP starts (1-based; 0 or 1: from the first)")
    a(T, "--augmentation", default="auto", choices=("auto", "crop-flip", "none"),
      help="training augmentation; auto: the dataset's (crop-flip, except none for SVHN, as upstream, and for a "
           "dataset whose images carry a box)")
    a(R, "--cam-refresh", default="batch", choices=("batch", "official"),
      help="batch: CAM of each training batch itself; official: masks from a separate shuffled pass, "
           "paired by batch index (upstream behaviour)")
    a(R, "--clip-part-start", action="store_true",
      help="clip the random start of PART's PGD to [0, 1] as the warm-up attack (torchattacks' PGD) does; "
           "upstream's part_pgd does not, which is the one difference between PART with --low-epsilon = "
           "--epsilon and the AT baseline")
    a(R, "--no-reweight", action="store_true",
      help=f"skip the CAM: plain {method.base} with the same schedule (the baseline)")
    a(N, "--eval", type=eval_list, default=",".join(DEFAULT_EVALS), metavar="LIST",
      help=", ".join(["comma list of natural, pgd20, mma, aa (AutoAttack via torchattacks, the official evaluation), "
                      "aa-standard (AutoAttack by its authors, pyautoattack, as RobustBench)",
                      *(e.help for e in STUDY_EVALS.values())]))
    for f, _ in study_flags():                 # the flags of the evaluations the studies registered
        a(S, f.name, **f.kwargs)
    a(S, "--eval-seeding", default="image", choices=EVAL_SEEDINGS,
      help="image: each test image's attack start from its own stream (keyed by its index in the test split), "
           "so accuracies do not depend on --batch-size, ranks or resumption; batch: batch i of an attack on its "
           "own seed (runs made before; the CPU-scale study keeps it)")
    a(S, "--eval-epsilon", type=positive_budget, default="8/255", help="budget of PGD-20, MMA and AutoAttack")
    a(N, "--eval-only", default=None, metavar="CHECKPOINT",
      help="evaluate this checkpoint, no training; robustbench:NAME: RobustBench's zoo model NAME (CIFAR-10, "
           "L-inf) from --zoo-dir, loaded by robustbench's own code")
    a(N, "--zoo-dir", default="./data/robustbench", metavar="DIR",
      help="with --eval-only robustbench:NAME: RobustBench's model folder (its load_model's model_dir: "
           "DIR/cifar10/Linf/NAME.pt; downloaded there by robustbench when missing, unless --no-download)")
    a(N, "--cam-layer", default=None, metavar="NAME",
      help="with --eval-only robustbench:NAME: the layer the grad-cam package's CAMs read (default: layer4 of a "
           "ResNet, block3 of a WideResNet)")
    a(N, "--resume", default=None, metavar="CHECKPOINT",
      help="continue training from this checkpoint; 'auto': from the newest complete one in --model-dir, or a "
           "fresh start if there is none (the same command line for every start of a preemptible job)")
    a(N, "--resume-anyway", action="store_true",
      help="continue a checkpoint although its training settings differ from these flags (recorded in the results)")
    a(N, "--overwrite", action="store_true",
      help="let a fresh run replace the checkpoints and results of another run in --model-dir / --results")
    a(N, "--results", default=None, metavar="PATH", help="results JSON (default <model-dir>/results.json)")
    a(T, "--train-subset", type=positive_int, default=None, metavar="N", help="train on a fixed random N images (default: all)")
    a(S, "--test-subset", type=positive_int, default=None, metavar="N", help="evaluate on a fixed random N images (default: all)")
    a(N, "--workers", type=non_negative_int, default=0, help="DataLoader worker processes (--loader torch)")
    a(S, "--loader", default="auto", choices=("auto", "torch", "resident"),
      help="torch: DataLoader with per-sample augmentation on the CPU; resident: the training set held "
           "on the device as uint8, augmented in batches there; auto: resident on CUDA, torch on the CPU")
    a(T, "--precision", default="fp32", choices=("fp32", "bf16"),
      help="training forward passes (attacks and loss) in fp32 or under bf16 autocast; perturbations, "
           "projections, the CAM, the ε map and the evaluation stay fp32")
    a(S, "--channels-last", action="store_true", help="channels_last memory format for the model and batches (faster on GPUs and on some CPUs; bench/RESULTS.md)")
    a(S, "--no-cuda-graphs", action="store_true",
      help="on CUDA, run the training attacks eagerly instead of as captured CUDA graphs")
    a(S, "--aa-subset", type=positive_int, default=None, metavar="N",
      help="AutoAttack (both) and ROAD on a fixed random N of the test images (the other evaluations use all "
           "of them; default: all)")
    a(N, "--save-masks", type=non_negative_int, default=0, metavar="N",
      help="after warm-up and at the end, a PNG grid of N fixed test images: image, importance map (--map), ε map, perturbation")
    a(N, "--eval-every", type=non_negative_int, default=0, metavar="K",
      help="natural and PGD-20 accuracy every K epochs on --eval-subset test images (0: off)")
    a(N, "--eval-subset", type=positive_int, default=1000, metavar="M",
      help="fixed test images for --eval-every")
    a(T, "--sync-bn", action="store_true",
      help="under torchrun, BatchNorm statistics over the global batch of all ranks (default: per rank, as "
           "DataParallel)")
    a(N, "--threads", type=thread_count, default=None, metavar="N",
      help="torch CPU threads, at most 1024 (default: torch's own, the cores; under torchrun OMP_NUM_THREADS; "
           "experiments.run --jobs N gives each run the cores / N); CPU results differ slightly with the count, "
           "which every results JSON records (machine.threads)")
    a(N, "--no-progress", action="store_true", help="no progress bars")


def flag_dest(names: tuple[str, ...], kwargs: dict) -> str:
    return kwargs.get("dest") or names[0].lstrip("-").replace("-", "_")


@functools.cache
def _declared() -> tuple[tuple[str, str, Role], ...]:
    """(setting, flag as a user types it, role) over every script's flags."""
    out = []
    for method in VARIANTS.values():
        declare_flags(lambda role, *names, **kwargs: out.append((flag_dest(names, kwargs), names[0], role)), method)
    return tuple(out)


@functools.cache
def roles() -> dict[str, Role]:
    """{setting: Role} over every script's flags and the derived settings."""
    out = dict(DERIVED_ROLES)
    out.update({dest: role for dest, _, role in _declared()})
    return out


def flag_names() -> dict[str, str]:
    """{setting: the flag as a user types it} (its first spelling)."""
    return {dest: name for dest, name, _ in _declared()}


def must_match() -> tuple[str, ...]:
    return tuple(k for k, r in roles().items() if r in (Role.TRAINING, Role.REWEIGHTING))


def reweighting_only() -> frozenset[str]:
    return frozenset(k for k, r in roles().items() if r is Role.REWEIGHTING)


def report_ignores() -> frozenset[str]:
    """Keys that are not settings of an arm: the NONE role, and the report's own axes (the script, and
    the seed that tells replicates apart)."""
    return frozenset(k for k, r in roles().items() if r is Role.NONE) | {"method", "seed"}
