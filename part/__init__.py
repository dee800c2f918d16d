"""PART (Zhang et al., ICML 2024) and its variants: the method this project implements.

  part/__init__.py   the three variants the entry scripts train (PART, PART-T, PART-M: which base method
                     warms up and which one PART reweights, their flags, folders and labels), and the
                     method's settings (`PartSettings`), built once from the command line. Torch-free:
                     the command line and the report read it.
  part/step.py       the step of a batch in the paper's order (`train_batch`), the base methods' attacks
                     and objectives, the phases and the learning-rate schedule.

The importance maps and the mask rules are in cam/ (maps.py, rules.py), the attacks and objectives in
attacks/; docs/method.md follows one batch through the five files.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from cam.rules import CAM_FREE_RULES, rule_params
from common.argtypes import Flag, non_negative


@dataclass(frozen=True)
class Variant:
    key: str          # entry-script suffix: part, part_t, part_m
    name: str         # PART, PART-T, PART-M
    base: str         # AT, TRADES, MART: the warm-up method and the --no-reweight baseline
    base_key: str     # at, trades or mart: the base method's entry in part.step.BASE_METHODS
    dir_name: str     # checkpoint folder, as the official code
    flags: tuple[Flag, ...] = ()    # the base method's own flags (training settings; --beta: the objective's)

    @property
    def script(self) -> str:
        return f"train_eval_{self.key}.py"

    def label(self, no_reweight: bool, mask_rule: str) -> str:
        """A run's method in results and reports: the base method (--no-reweight), base-rule for a
        CAM-free control (AT-random), else the PART variant."""
        return self.base if no_reweight else f"{self.base}-{mask_rule}" if mask_rule in CAM_FREE_RULES else self.name


def _beta(base: str) -> Flag:
    return Flag("--beta", dict(type=non_negative, default=6.0, help=f"{base} regularisation weight"))


def _official_attack(base: str) -> Flag:
    """--attack of the official train_eval_part_t.py / _m.py: declared there, never read (they train with the
    base method's attack); taken here so that an official command line runs, `mma` refused."""
    return Flag("--attack", dict(default="pgd", choices=("pgd", "mma"),
                                 help=f"accepted as in the official script, which never reads it: {base}'s own "
                                      "attack trains (mma: MMA-AT is train_eval_part.py --attack mma)"))


VARIANTS = {
    # PGD-AT (Madry et al.) with PGD or MMA as the training attack (--attack).
    "part": Variant("part", "PART", "AT", "at", "PART",
                    (Flag("--attack", dict(default="pgd", choices=("pgd", "mma"), help="training attack")),)),
    # TRADES: the KL inner maximisation; it starts at x + 0.001 N(0, 1) (at x its gradient is zero).
    "part_t": Variant("part_t", "PART-T", "TRADES", "trades", "PART_T", (_beta("TRADES"), _official_attack("TRADES"))),
    # MART: PGD with the official mart_loss's min/max projection of a float budget; the same start.
    "part_m": Variant("part_m", "PART-M", "MART", "mart", "PART_M", (_beta("MART"), _official_attack("MART"))),
}
# The report's pairing: each label of a reweighted run -> the label of its baseline.
BASE_OF = {m.label(False, rule): m.base for m in VARIANTS.values() for rule in ("official",) + CAM_FREE_RULES}


@dataclass(frozen=True)
class PartSettings:
    """The method's settings: what part.step and cam/ read. The defaults are the paper's (the official
    scripts' defaults), so `PartSettings()` is PART on CIFAR-10 and `PartSettings(warm_up=0)` PART from the
    first epoch; the scripts build it from their command line once (`from_args`)."""
    epsilon: float = 8 / 255        # the full budget (the warm-up's, the baseline's, PART's important pixels)
    low_epsilon: float = 7 / 255    # PART's budget on the other pixels
    num_steps: int = 10             # training attack steps
    step_size: float = 2 / 255
    rand_init: bool = True          # a uniform random start of the PGD / MMA training attacks (false: at x)
    clip_part_start: bool = False   # clip PART's start to [0, 1] as the warm-up's (upstream's part_pgd does not)
    mask_rule: str = "official"     # cam.rules.RULES
    cam: str = "gradcam"            # the importance map (--map / --cam): cam.maps.MAPS
    no_reweight: bool = False       # the baseline: the base method at epsilon throughout
    warm_up: int = 20               # epochs of the base method before PART
    lr: float = 0.01
    adjust_first: int = 60          # lr x0.1 from this post-warm-up epoch
    adjust_second: int = 90         # lr x0.01 from this one
    attack: str = "pgd"             # PART's training attack: pgd or mma (MMA-AT)
    beta: float = 0.0               # the TRADES / MART regularisation weight (the scripts': 6.0)
    rule_params: dict = field(default_factory=dict)   # the rule's own flags (cam.rules.RULES), by setting name

    @classmethod
    def from_args(cls, args) -> "PartSettings":
        own = {f.name: getattr(args, f.name) for f in fields(cls) if f.name != "rule_params" and hasattr(args, f.name)}
        return cls(**own, rule_params=rule_params(args))
