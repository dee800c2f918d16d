"""PART-M: MART warm-up, then pixel-reweighted MART, then natural / PGD-20 / MMA / AutoAttack.

    python train_eval_part_m.py --help
"""
import sys

from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("part_m"))
