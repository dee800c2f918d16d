"""The parser the three entry scripts share: every flag of `runner.cli.settings` in its --help section,
and `get_args(method, argv)`, which parses and validates."""
from __future__ import annotations

import argparse
import sys

from common.argtypes import OneDefaultFormatter, OneLineParser
from common.errors import UserError
from common.extras import require
from runner.cli.settings import Role, declare_flags, flag_dest
from runner.infra.distributed import env_world_size
from part import VARIANTS
from cam.maps import MAPS, NATIVE_CAMS
from cam.rules import RULES, rule_flag_errors
from runner.data.datasets import DATASETS
from runner.registry import STUDY_EVALS, study_flags


# --help's sections: a flag goes to its role's section, the evaluation's flags to their own.
HELP_GROUPS = {"training": "training (what is trained, epoch by epoch)",
               "part": "PART: the pixel reweighting (a --no-reweight baseline ignores these)",
               "evaluation": "evaluation (what is measured at the end, and on the way)",
               "run": "running (data and output folders, devices, resuming, speed, messages)"}
GROUP_OF_ROLE = {"TRAINING": "training", "REWEIGHTING": "part", "RESULT": "run", "NONE": "run"}
EVALUATION_FLAGS = frozenset({"eval", "eval_epsilon", "eval_seeding", "eval_only", "test_subset", "aa_subset",
                              "eval_every", "eval_subset", "save_masks", "zoo_dir", "cam_layer"})


def declare(p: argparse.ArgumentParser):
    """p.add_argument with the flag's Role first: --help lists each flag in its section (HELP_GROUPS: by
    role, the evaluation's flags apart; --epochs and --no-reweight with training)."""
    groups = {k: p.add_argument_group(title) for k, title in HELP_GROUPS.items()}

    def add(role: Role, *names: str, **kwargs) -> argparse.Action:
        dest = flag_dest(names, kwargs)
        evaluation = EVALUATION_FLAGS | {f.dest for f, _ in study_flags()}
        group = "evaluation" if dest in evaluation else "training" if dest in ("epochs", "no_reweight") \
            else GROUP_OF_ROLE[role.name]
        return groups[group].add_argument(*names, **kwargs)
    return add


def build_parser(method_key: str) -> argparse.ArgumentParser:
    method = VARIANTS[method_key]
    p = OneLineParser(
        prog=method.script, usage=f"python {method.script} [FLAG ...]   (the flags below, in four sections)",
        description=f"{method.name}: {method.base} warm-up (--warm-up epochs), then pixel-reweighted {method.base} "
                    "(PART, ICML 2024), then evaluation (natural, PGD-20, MMA, AutoAttack). Every flag is declared "
                    "in runner/cli/settings.py (the mask rules' in cam/rules.py, the variants' in part/__init__.py); "
                    "the step of a batch is part/step.py.",
        formatter_class=OneDefaultFormatter)
    declare_flags(declare(p), method)
    p.set_defaults(method=method_key)
    return p


# What the official scripts force for a dataset (SVHN: its entry's `overrides`) is applied unless the user
# gives the flag. The settings added by get_args: DERIVED_ROLES.



def study_flag_errors(args: argparse.Namespace, extras: tuple[str, ...]) -> list[str]:
    """What is wrong with the study evaluations' flags (runner.registry.study_flags): one given without an
    evaluation it serves, or one the data cannot serve (each study's `check`; --eval-only without --data
    checks against the checkpoint's data later)."""
    errors = [f"{flag.name} needs --eval {' or '.join(names)}" for flag, names in study_flags()
              if flag.dest in args.given and not set(names) & set(args.eval)]
    if not (args.eval_only and "data" not in args.given):
        errors += study_data_errors(args, extras)
    return errors


def study_data_errors(args: argparse.Namespace, extras: tuple[str, ...]) -> list[str]:
    """The studies' own checks of their flags against data whose images carry `extras`."""
    checks = (STUDY_EVALS[name].check for name in args.eval if name in STUDY_EVALS)
    return [message for check in checks if check is not None for message in [check(args, extras)] if message]

def _given(argv: list[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in argv for f in flags)


def get_args(method_key: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser(method_key)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    # The settings given on the command line (--eval-only takes the others from its checkpoint).
    args.given = sorted({a.dest for a in parser._actions if a.option_strings and _given(argv, *a.option_strings)})
    args.dataset_overrides = {}
    dataset = DATASETS[args.data]
    for dest, (flag, value) in dataset.overrides.items():
        if not _given(argv, flag, *(["--wd"] if dest == "weight_decay" else [])):
            setattr(args, dest, value)
            args.dataset_overrides[flag] = value
    if args.augmentation == "auto":      # an extra (a box) would move off its object under augmentation
        args.augmentation = "none" if dataset.extras else dataset.augmentation
    for error in rule_flag_errors(args):
        parser.error(error)
    if args.cam_refresh == "official" and not RULES[args.mask_rule].reads_map:
        parser.error(f"--cam-refresh official pairs each batch with the map of another; --mask-rule {args.mask_rule} "
                     "reads no map")
    if why := MAPS[args.cam].refusal(args.data, dataset.extras):
        parser.error(f"--map {args.cam} {why}")
    for error in study_flag_errors(args, dataset.extras):
        parser.error(error)
    if dataset.extras and args.augmentation != "none":
        parser.error(f"--augmentation {args.augmentation} would move {args.data}'s {', '.join(dataset.extras)} off "
                     "their objects; use --augmentation none")
    if args.low_epsilon > args.epsilon:
        parser.error(f"--low-epsilon ({args.low_epsilon:.6g}) must not exceed --epsilon ({args.epsilon:.6g})")
    if args.warm_up > args.epochs:
        parser.error(f"--warm-up ({args.warm_up}) must not exceed --epochs ({args.epochs})")
    if args.num_class is not None and args.num_class != dataset.classes:
        parser.error(f"--num-class {args.num_class} does not match the {dataset.classes} classes of {args.data}")
    if args.eval_only and args.resume:
        parser.error("--eval-only and --resume exclude each other")
    if getattr(args, "pre_trained", False):
        parser.error("--pre-trained true reads the ε maps of an earlier official run from weighted_eps_list.npz, "
                     "which this code never writes; for the official pairing of stored maps by batch index use "
                     "--cam-refresh official")
    if method_key != "part" and args.attack == "mma":
        parser.error(f"--attack mma is MMA-AT, an option of train_eval_part.py; {VARIANTS[method_key].script} "
                     f"trains with {VARIANTS[method_key].base}'s own attack (the official script declares --attack "
                     "but never reads it)")
    zoo = bool(args.eval_only) and args.eval_only.startswith("robustbench:")
    if not zoo and (args.cam_layer is not None or "zoo_dir" in args.given):
        parser.error(f"{'--cam-layer' if args.cam_layer is not None else '--zoo-dir'} needs --eval-only robustbench:NAME")
    if zoo:
        try:
            require("robustbench", f"--eval-only {args.eval_only}")
        except UserError as exc:
            parser.error(str(exc))
    if zoo and "model_dir" in args.given:
        parser.error("--model-dir has no meaning for a RobustBench model (its file is in --zoo-dir); --results "
                     "names where the results go")
    if zoo and args.data != "CIFAR10":
        parser.error(f"--eval-only {args.eval_only}: RobustBench's zoo here is CIFAR-10's (L-inf), not {args.data}")
    if zoo and args.cam in NATIVE_CAMS:       # the native CAMs need this project's models (features / head)
        if "cam" in args.given:
            parser.error(f"--map {args.cam} needs this project's models; for a RobustBench model use "
                         f"--map lib-{args.cam} (the grad-cam package's) or gradient")
        args.cam = f"lib-{args.cam}"
    args.world_size = env_world_size()
    if args.batch_size % args.world_size and not args.eval_only:    # evaluation deals out whole batches
        parser.error(f"--batch-size {args.batch_size} (the global batch) does not divide among the "
                     f"{args.world_size} processes torchrun started; give a multiple of {args.world_size}")
    if args.no_cuda:
        if args.device == "cuda":
            parser.error("--no-cuda and --device cuda exclude each other")
        args.device = "cpu"
    return args
