"""The evaluations the command line offers and the two registries the studies fill (STUDY_EVALS: the
evaluations a study adds to --eval; EVAL_ONLY_SOURCES: models from elsewhere for --eval-only), kept free of
torch so that `--help`, the report and the experiment runner start without importing torch, torchvision or
matplotlib. (The datasets are entries of runner/data/datasets.py, the maps and rules of cam/, the models of
models/.)"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# aa: AutoAttack through torchattacks (the official PART evaluation); aa-standard: the authors'
# implementation (pyautoattack, RobustBench's evaluator). The default --eval is the official set.
# The studies add theirs (STUDY_EVALS below: cam-info, map-info, road, studies/cam_info.py); none is a default.
BUILTIN_EVALS = ("natural", "pgd20", "mma", "aa", "aa-standard")
DEFAULT_EVALS = ("natural", "pgd20", "mma", "aa")
AUTOATTACKS = ("aa", "aa-standard")
# How an attack evaluation seeds its random starts (common.rng): per image (the default) or per batch.
EVAL_SEEDINGS = ("image", "batch")

# --eval-only PREFIX:NAME: models from elsewhere, each evaluated by the function its module registers
# here ({prefix: function(args, stop, dist) -> the results record}); exchange/eval_only.py registers
# "robustbench:" (RobustBench's zoo), and the three scripts import it. The runner knows no source itself.
EVAL_ONLY_SOURCES: dict = {}


@dataclass(frozen=True)
class StudyEvaluation:
    """An evaluation a study adds to --eval (studies/evaluations.py registers cam-info, map-info and road):
    its batches give counts of their own, not adversarial images; the runner runs its batches (seeded,
    resumable, sharded under torchrun) and stores what `summary` makes of their column sums."""
    header: str               # its line in the log, as PGD's and MMA's
    counts: Callable          # counts(model, x, y, s: EvalSettings, draw, extras) -> [number, ...] of one batch
    summary: Callable         # summary(columns, images, s, image_elements, extra_names) -> its results JSON entry
    describe: Callable        # describe(entry, s, images, extra_names) -> the text printed (its header line first)
    key: Callable             # key(args) -> {what its numbers depend on beyond the weights and images}
    on_subset: bool = False   # on the --aa-subset images only (a slow one)
    help: str = ""            # its words in --eval's help
    flags: tuple = ()         # its own flags (common.argtypes.Flag), in --help's evaluation section; one flag may
                              # serve several evaluations (declared once), and is refused without one of them
    check: Callable | None = None   # check(args, extras) -> a message where its flags cannot work on a dataset
                                    # whose images carry `extras` (names), else None


STUDY_EVALS: dict[str, StudyEvaluation] = {}


def evaluations() -> tuple[str, ...]:
    """Every name --eval takes: the built-in evaluations, then the studies' (in the order registered)."""
    return BUILTIN_EVALS + tuple(STUDY_EVALS)


def study_flags() -> list[tuple]:
    """(flag, the names of the study evaluations it serves) of every flag the studies registered, in order."""
    by_name: dict = {}
    for name, study in STUDY_EVALS.items():
        for flag in study.flags:
            by_name.setdefault(flag.name, (flag, []))[1].append(name)
    return list(by_name.values())
