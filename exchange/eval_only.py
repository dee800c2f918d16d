"""`--eval-only robustbench:NAME` of the three scripts, registered with the runner (torch-free; the scripts
import this module): a RobustBench zoo model through every evaluation of ours (exchange/evaluate.py)."""
from __future__ import annotations

from exchange.robustbench import ZOO_PREFIX
from runner.registry import EVAL_ONLY_SOURCES


def evaluate(args, stop, dist) -> dict:
    """The evaluation, imported only when asked (it needs torch)."""
    from exchange.evaluate import evaluate_zoo_model
    return evaluate_zoo_model(args, stop, dist)


EVAL_ONLY_SOURCES[ZOO_PREFIX] = evaluate
