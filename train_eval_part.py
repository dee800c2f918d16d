"""PART (Zhang et al., ICML 2024): PGD-AT for --warm-up epochs, then PART — PGD-AT on adversarial
examples whose budget is epsilon on the pixels the batch's own CAM marks important and --low-epsilon
elsewhere — then natural / PGD-20 / MMA / AutoAttack accuracy. --no-reweight trains the AT baseline.

Its own flag: --attack pgd (or mma, MMA-AT). The shared flags and their official defaults
(ResNet-18, CIFAR-10, 80 epochs of which 20 warm-up, epsilon 8/255, --low-epsilon 7/255):
runner/cli/settings.py; the step of a batch: part/step.py; `--help` lists every flag by section.
"""
import sys

import exchange.eval_only  # noqa: F401  (registers --eval-only robustbench:NAME, a RobustBench zoo model)
import studies.evaluations  # noqa: F401  (registers --eval cam-info, map-info, road)
from runner.main import main

if __name__ == "__main__":
    sys.exit(main("part"))
