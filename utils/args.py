"""Command line shared by the three entry scripts: the official flags (same names and defaults,
correctly typed) plus this project's additions. `get_args(method, argv)` parses and validates."""
from __future__ import annotations

import argparse
import math
import sys
from fractions import Fraction

from utils.distributed import env_world_size
from utils.methods import METHODS
from utils.names import CAM_METHODS, DATASETS, DEFAULT_EVALS, EVALS, MASK_RULES, MODEL_NAMES, NUM_CLASSES, QUADRANTS


def parse_fraction(text: str) -> float:
    """'8/255' or '0.031' -> float; malformed or non-finite values are rejected (ranges: `number`)."""
    try:
        if "/" in text:
            num, den = text.split("/")
            value = float(Fraction(num.strip()) / Fraction(den.strip()))
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(f"invalid number {text!r} (use a number like 0.03 or 8/255)")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: must be finite")
    return value


def number(low: float = 0.0, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """argparse type: a finite fraction or decimal within [low, high] (an open end excludes the bound),
    so that a negative learning rate or a NaN budget stops at the command line, not an epoch later."""
    lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open or math.isinf(high) else "]")

    def parse(text: str) -> float:
        value = parse_fraction(text)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: give a finite number in {lo}, {hi}")
        return value
    return parse


rate = number(low_open=True)                        # > 0: learning rate
non_negative = number()                             # >= 0: weight decay, beta
budget = number(high=1.0)                           # [0, 1]: budgets on images in [0, 1]
positive_budget = number(high=1.0, low_open=True)   # (0, 1]: step size, evaluation budget


def int_at_least(minimum: int):
    """argparse type: an integer >= minimum."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        return value
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def boolean(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no): upstream's type=bool took any non-empty string as True."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (use true or false)")


def region_list(text: str) -> dict[str, float]:
    """'ul=6/255,ur=12/255,bl=12/255,br=12/255' -> {quadrant: budget}."""
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in QUADRANTS:
            raise argparse.ArgumentTypeError(
                f"invalid --region-eps item {item!r}: use {','.join(q + '=8/255' for q in QUADRANTS)}")
        out[key.strip()] = budget(value.strip())
    return out


def eval_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in EVALS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"invalid --eval {text!r}: a comma list of {','.join(EVALS)}")
    return items


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line on stderr, exit code 2, and takes flags only
    by their full names (an abbreviation such as --batch would slip past the checks of get_args)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser(method_key: str) -> argparse.ArgumentParser:
    method = METHODS[method_key]
    p = OneLineParser(
        prog=method.script,
        description=f"{method.name}: {method.base} warm-up, then pixel-reweighted {method.base} "
                    "(ICML 2024), and evaluation (natural, PGD-20, MMA, AutoAttack).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    # The official flags.
    a("--batch-size", type=positive_int, default=128, metavar="N", help="training batch size")
    a("--epochs", type=positive_int, default=80, metavar="N", help="total epochs, warm-up included")
    a("--weight-decay", "--wd", type=non_negative, default=2e-4, metavar="W", help="SGD weight decay")
    a("--lr", type=rate, default=0.01, metavar="LR", help="learning rate")
    a("--momentum", type=number(high=1.0, high_open=True), default=0.9, metavar="M", help="SGD momentum, in [0, 1)")
    a("--no-cuda", action="store_true", help="disable CUDA (same as --device cpu)")
    # Budgets as fractions: argparse parses a string default like a given value, and --help shows 8/255.
    a("--epsilon", type=budget, default="8/255", help="budget on important pixels")
    a("--low-epsilon", type=budget, default="7/255", help="budget on the other pixels")
    a("--num-steps", type=positive_int, default=10, help="attack steps during training")
    a("--num-class", type=positive_int, default=None,
      help="number of classes (default: from the data; if given it must match the data)")
    a("--rand_init", "--rand-init", type=boolean, default=True, metavar="BOOL",
      help="uniform random start of the PGD / MMA training attacks (false: start at x); TRADES and MART "
           "always start at x + 0.001 N(0, 1), as upstream")
    a("--step-size", type=positive_budget, default="2/255", help="attack step size (training and PGD-20/MMA)")
    a("--adjust-first", type=positive_int, default=60,
      help="lr x0.1 from this post-warm-up epoch (counted after the warm-up, as upstream)")
    a("--adjust-second", type=positive_int, default=90, help="lr x0.01 from this post-warm-up epoch")
    a("--seed", type=int, default=1, metavar="S", help="random seed")
    a("--log-interval", type=positive_int, default=100, metavar="N", help="batches between progress lines")
    a("--model-dir", default=None,
      help=f"checkpoint folder (default ./checkpoint/<data>/<model>/{method.dir_name})")
    a("--save-freq", type=positive_int, default=10, metavar="N", help="checkpoint every N epochs (and at the end)")
    a("--save-weights", type=positive_int, default=1, metavar="N",
      help="with --cam-refresh official: recompute the masks every N PART epochs, as upstream")
    a("--data", default="CIFAR10", choices=DATASETS, help="dataset")
    a("--model", default="resnet", choices=MODEL_NAMES,
      help="resnet (ResNet-18), wideresnet (WRN-34-10), smallcnn (TRADES small CNN, CPU-sized) or smallcnn-bn "
           "(a CPU-sized CNN with BatchNorm, the CPU-scale study's)")
    a("--warm-up", type=non_negative_int, default=20, help=f"epochs of plain {method.base} before PART")
    a("--cam", default="gradcam", choices=CAM_METHODS, metavar="NAME",
      help=f"CAM method, one of {', '.join(CAM_METHODS)}; gradcam, xgradcam, layercam run natively, "
           "the others (and lib-*) through the grad-cam package")
    if method.loss == "at":
        a("--attack", default="pgd", choices=("pgd", "mma"), help="training attack")
    else:
        a("--beta", type=non_negative, default=6.0, help=f"{method.base} regularisation weight")
    # This project's additions.
    a("--data-dir", default="./data", help="dataset root, image-folder tree or .zip (see data/README.md)")
    a("--no-download", action="store_true", help="never try to download a missing dataset")
    a("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where to train")
    a("--mask-rule", default="official", choices=MASK_RULES,
      help="official: the upstream jet-colour-map rule; cam: z-scored bilinear CAM; "
           "region: fixed per-quadrant budgets from --region-eps, no CAM (Figure 1); random: each element "
           "keeps --epsilon with probability --random-share, no CAM (the control of PART's placement)")
    a("--random-share", type=number(high=1.0, low_open=True, high_open=True), default=None, metavar="P",
      help="with --mask-rule random: probability that an element keeps --epsilon (the rest get --low-epsilon)")
    a("--region-eps", type=region_list, default={}, metavar="LIST",
      help="with --mask-rule region: ul=,ur=,bl=,br= budgets (missing quadrants get --epsilon)")
    a("--awp-gamma", type=budget, default=0.0, metavar="G",
      help="Adversarial Weight Perturbation (Wu et al. 2020) of size G relative to each weight's norm, in every "
           "phase (0: off; the AWP paper's 5e-3)")
    a("--awp-warmup", type=non_negative_int, default=0, metavar="E",
      help="with --awp-gamma: the epoch AWP starts (1-based; 0 or 1: from the first)")
    a("--augmentation", default="auto", choices=("auto", "crop-flip", "none"),
      help="training augmentation; auto: crop-flip, except none for SVHN (as upstream)")
    a("--cam-refresh", default="batch", choices=("batch", "official"),
      help="batch: CAM of each training batch itself; official: masks from a separate shuffled pass, "
           "paired by batch index (upstream behaviour)")
    a("--clip-part-start", action="store_true",
      help="clip the random start of PART's PGD to [0, 1] as the warm-up attack (torchattacks' PGD) does; "
           "upstream's part_pgd does not, which is the one difference between PART with --low-epsilon = "
           "--epsilon and the AT baseline")
    a("--no-reweight", action="store_true",
      help=f"skip the CAM: plain {method.base} with the same schedule (the baseline)")
    a("--eval", type=eval_list, default=",".join(DEFAULT_EVALS), metavar="LIST",
      help="comma list of natural, pgd20, mma, aa (AutoAttack via torchattacks, the official evaluation), "
           "aa-standard (AutoAttack by its authors, pyautoattack, as RobustBench)")
    a("--eval-epsilon", type=positive_budget, default="8/255", help="budget of PGD-20, MMA and AutoAttack")
    a("--eval-only", default=None, metavar="CHECKPOINT", help="evaluate this checkpoint, no training")
    a("--resume", default=None, metavar="CHECKPOINT",
      help="continue training from this checkpoint; 'auto': from the newest complete one in --model-dir, or a "
           "fresh start if there is none (the same command line for every start of a preemptible job)")
    a("--resume-anyway", action="store_true",
      help="continue a checkpoint although its training settings differ from these flags (recorded in the results)")
    a("--overwrite", action="store_true",
      help="let a fresh run replace the checkpoints and results of another run in --model-dir / --results")
    a("--results", default=None, metavar="PATH", help="results JSON (default <model-dir>/results.json)")
    a("--train-subset", type=positive_int, default=None, metavar="N", help="train on a fixed random N images")
    a("--test-subset", type=positive_int, default=None, metavar="N", help="evaluate on a fixed random N images")
    a("--workers", type=non_negative_int, default=0, help="DataLoader worker processes (--loader torch)")
    a("--loader", default="auto", choices=("auto", "torch", "resident"),
      help="torch: DataLoader with per-sample augmentation on the CPU; resident: the training set held "
           "on the device as uint8, augmented in batches there; auto: resident on CUDA, torch on the CPU")
    a("--precision", default="fp32", choices=("fp32", "bf16"),
      help="training forward passes (attacks and loss) in fp32 or under bf16 autocast; perturbations, "
           "projections, the CAM, the ε map and the evaluation stay fp32")
    a("--channels-last", action="store_true", help="channels_last memory format for the model (GPUs)")
    a("--no-cuda-graphs", action="store_true",
      help="on CUDA, run the training attacks eagerly instead of as captured CUDA graphs")
    a("--aa-subset", type=positive_int, default=None, metavar="N",
      help="AutoAttack on a fixed random N of the test images (the other evaluations use all of them)")
    a("--save-masks", type=non_negative_int, default=0, metavar="N",
      help="after warm-up and at the end, a PNG grid of N fixed test images: image, CAM, ε map, perturbation")
    a("--eval-every", type=non_negative_int, default=0, metavar="K",
      help="natural and PGD-20 accuracy every K epochs on --eval-subset test images (0: off)")
    a("--eval-subset", type=positive_int, default=1000, metavar="M",
      help="fixed test images for --eval-every")
    a("--sync-bn", action="store_true",
      help="under torchrun, BatchNorm statistics over the global batch of all ranks (default: per rank, as "
           "DataParallel)")
    a("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(method=method_key)
    return p


# What the official scripts force for SVHN; applied unless the user gives the flag.
SVHN_OVERRIDES = {"step_size": ("--step-size", 1 / 255), "weight_decay": ("--weight-decay", 0.0035),
                  "lr": ("--lr", 0.01), "batch_size": ("--batch-size", 128)}


def _given(argv: list[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in argv for f in flags)


def get_args(method_key: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser(method_key)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.dataset_overrides = {}
    if args.data == "SVHN":
        for dest, (flag, value) in SVHN_OVERRIDES.items():
            if not _given(argv, flag, *(["--wd"] if dest == "weight_decay" else [])):
                setattr(args, dest, value)
                args.dataset_overrides[flag] = value
    if args.augmentation == "auto":
        args.augmentation = "none" if args.data == "SVHN" else "crop-flip"
    if args.region_eps and args.mask_rule != "region":
        parser.error("--region-eps needs --mask-rule region")
    if (args.random_share is None) == (args.mask_rule == "random"):
        parser.error("--mask-rule random needs --random-share P" if args.random_share is None
                     else "--random-share needs --mask-rule random")
    if args.low_epsilon > args.epsilon:
        parser.error(f"--low-epsilon ({args.low_epsilon:.6g}) must not exceed --epsilon ({args.epsilon:.6g})")
    if args.warm_up > args.epochs:
        parser.error(f"--warm-up ({args.warm_up}) must not exceed --epochs ({args.epochs})")
    if args.num_class is not None and args.num_class != NUM_CLASSES[args.data]:
        parser.error(f"--num-class {args.num_class} does not match the {NUM_CLASSES[args.data]} classes of {args.data}")
    if args.eval_only and args.resume:
        parser.error("--eval-only and --resume exclude each other")
    args.world_size = env_world_size()
    if args.batch_size % args.world_size and not args.eval_only:    # evaluation deals out whole batches
        parser.error(f"--batch-size {args.batch_size} (the global batch) does not divide among the "
                     f"{args.world_size} processes torchrun started; give a multiple of {args.world_size}")
    if args.no_cuda:
        if args.device == "cuda":
            parser.error("--no-cuda and --device cuda exclude each other")
        args.device = "cpu"
    return args
