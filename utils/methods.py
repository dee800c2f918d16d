"""The three PART variants: which base method warms up and which loss PART reweights."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    key: str          # entry-script suffix: part, part_t, part_m
    name: str         # PART, PART-T, PART-M
    base: str         # AT, TRADES, MART: the warm-up method and the --no-reweight baseline
    loss: str         # at, trades or mart (utils.recipe.training_loss)
    dir_name: str     # checkpoint folder, as the official code


METHODS = {
    "part": Method("part", "PART", "AT", "at", "PART"),
    "part_t": Method("part_t", "PART-T", "TRADES", "trades", "PART_T"),
    "part_m": Method("part_m", "PART-M", "MART", "mart", "PART_M"),
}
