"""PART-T: TRADES warm-up, then pixel-reweighted TRADES, then natural / PGD-20 / MMA / AutoAttack.

    python train_eval_part_t.py --help
"""
import sys

from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("part_t"))
