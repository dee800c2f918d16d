"""The three PART variants: which base method warms up and which loss PART reweights; the only
table of them (scripts, checkpoint folders, result labels and the report's pairing derive from it).
Torch-free: the command line and the report read it."""
from __future__ import annotations

from dataclasses import dataclass

from utils.rules import CAM_FREE_RULES


@dataclass(frozen=True)
class Method:
    key: str          # entry-script suffix: part, part_t, part_m
    name: str         # PART, PART-T, PART-M
    base: str         # AT, TRADES, MART: the warm-up method and the --no-reweight baseline
    loss: str         # at, trades or mart (utils.recipe.training_loss)
    dir_name: str     # checkpoint folder, as the official code

    @property
    def script(self) -> str:
        return f"train_eval_{self.key}.py"

    def label(self, no_reweight: bool, mask_rule: str) -> str:
        """A run's method in results and reports: the base method (--no-reweight), base-rule for a
        CAM-free control (AT-random), else the PART variant."""
        return self.base if no_reweight else f"{self.base}-{mask_rule}" if mask_rule in CAM_FREE_RULES else self.name


METHODS = {
    "part": Method("part", "PART", "AT", "at", "PART"),
    "part_t": Method("part_t", "PART-T", "TRADES", "trades", "PART_T"),
    "part_m": Method("part_m", "PART-M", "MART", "mart", "PART_M"),
}
# The report's pairing: each label of a reweighted run -> the label of its baseline.
BASE_OF = {m.label(False, rule): m.base for m in METHODS.values() for rule in ("official",) + CAM_FREE_RULES}
