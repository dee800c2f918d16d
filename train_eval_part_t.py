"""PART-T: TRADES for --warm-up epochs, then TRADES on pixel-reweighted adversarial examples (epsilon on
the CAM's important pixels, --low-epsilon elsewhere), then natural / PGD-20 / MMA / AutoAttack accuracy.
--no-reweight trains the TRADES baseline; --beta (6.0) weighs TRADES's KL term.

Its own flag: --beta 6.0. The shared flags and their official defaults (ResNet-18, CIFAR-10, 80
epochs of which 20 warm-up, epsilon 8/255, --low-epsilon 7/255): runner/cli/settings.py; the step of a batch:
part/step.py; `--help` lists every flag by section.
"""
import sys

import exchange.eval_only  # noqa: F401  (registers --eval-only robustbench:NAME, a RobustBench zoo model)
import studies.evaluations  # noqa: F401  (registers --eval cam-info, map-info, road)
from runner.main import main

if __name__ == "__main__":
    sys.exit(main("part_t"))
