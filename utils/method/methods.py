"""The three PART variants, the only table of them: which base method warms up and which loss PART
reweights, and that base method's attack (the inner maximisation), objective (the outer minimisation),
random start and projection, as the official code has them; scripts, checkpoint folders, result
labels, the report's pairing and utils/method/recipe.py's training loss derive from it.
And the decorations of the training step (AWP), the only table of them with their flags.
Torch-free: the command line and the report read it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from utils.argtypes import Flag, budget, non_negative, non_negative_int
from utils.method.rules import CAM_FREE_RULES


@dataclass(frozen=True)
class Method:
    key: str          # entry-script suffix: part, part_t, part_m
    name: str         # PART, PART-T, PART-M
    base: str         # AT, TRADES, MART: the warm-up method and the --no-reweight baseline
    loss: str         # at, trades or mart: the base method's key
    dir_name: str     # checkpoint folder, as the official code
    attack: str       # the training attack (attacks.TRAIN_ATTACKS); "--attack": the flag chooses
    objective: Callable[[], Callable]   # returns objective(model, x, x_adv, y[, beta]); imports it only then
    flags: tuple[Flag, ...] = ()    # the base method's own flags (training settings; --beta: the objective's)
    fixed_start: str | None = None  # a start whatever --rand_init says (attacks.common.STARTS); None: recipe decides
    projection: str | None = None   # the official projection of a float budget (attacks.common.PROJECTIONS)

    @property
    def takes_beta(self) -> bool:
        return any(f.name == "--beta" for f in self.flags)

    @property
    def script(self) -> str:
        return f"train_eval_{self.key}.py"

    def label(self, no_reweight: bool, mask_rule: str) -> str:
        """A run's method in results and reports: the base method (--no-reweight), base-rule for a
        CAM-free control (AT-random), else the PART variant."""
        return self.base if no_reweight else f"{self.base}-{mask_rule}" if mask_rule in CAM_FREE_RULES else self.name


# The objectives (the outer minimisation, utils/method/losses.py), each imported when a run asks for it,
# so that this table stays torch-free.
def at_objective() -> Callable:
    from utils.method.losses import at_objective
    return at_objective


def trades_objective() -> Callable:
    from utils.method.losses import trades_objective
    return trades_objective


def mart_objective() -> Callable:
    from utils.method.losses import mart_objective
    return mart_objective


def _beta(base: str) -> Flag:
    return Flag("--beta", dict(type=non_negative, default=6.0, help=f"{base} regularisation weight"))


METHODS = {
    # PGD-AT (Madry et al.) with PGD or MMA as the training attack (--attack).
    "part": Method("part", "PART", "AT", "at", "PART", "--attack", at_objective,
                   (Flag("--attack", dict(default="pgd", choices=("pgd", "mma"), help="training attack")),)),
    # TRADES: the KL inner maximisation; it starts at x + 0.001 N(0, 1) (at x its gradient is zero).
    "part_t": Method("part_t", "PART-T", "TRADES", "trades", "PART_T", "trades", trades_objective,
                     (_beta("TRADES"),), fixed_start="normal"),
    # MART: PGD with the official mart_loss's min/max projection of a float budget; the same start.
    "part_m": Method("part_m", "PART-M", "MART", "mart", "PART_M", "pgd", mart_objective,
                     (_beta("MART"),), fixed_start="normal", projection="minmax"),
}
# A base method's entry by its key (at, trades, mart).
BY_LOSS = {m.loss: m for m in METHODS.values()}
# The report's pairing: each label of a reweighted run -> the label of its baseline.
BASE_OF = {m.label(False, rule): m.base for m in METHODS.values() for rule in ("official",) + CAM_FREE_RULES}


def awp(model, objective: Callable, args, dist):
    """AWP (utils.method.awp): imported here, when a run turns it on, so that this table stays torch-free."""
    from utils.method.awp import AWP
    return AWP.from_args(model, objective, args, dist)


@dataclass(frozen=True)
class StepDecoration:
    """A decoration of the update in utils.method.recipe.train_batch, in every phase of every method: `build`
    maps (model, objective, args, dist) to an object with begin_epoch(epoch) and around(x, x_adv, y),
    the context the update runs in; its flags are declared here (training settings, checked on resume);
    it is on when the flag `on` is non-zero, and off by default, so runs made before it existed compare
    with runs that leave it off."""
    name: str
    build: Callable
    on: str
    flags: tuple[Flag, ...]


STEP_DECORATIONS = (
    StepDecoration("awp", awp, "awp_gamma", (
        Flag("--awp-gamma", dict(type=budget, default=0.0, metavar="G",
                                 help="Adversarial Weight Perturbation (Wu et al. 2020) of size G relative to each "
                                      "weight's norm, in every phase (0: off; the AWP paper's 5e-3)")),
        Flag("--awp-warmup", dict(type=non_negative_int, default=0, metavar="E",
                                  help="with --awp-gamma: the epoch AWP starts (1-based; 0 or 1: from the first)")))),
)
