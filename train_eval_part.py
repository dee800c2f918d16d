"""PART: PGD-AT warm-up, then pixel-reweighted PGD-AT, then natural / PGD-20 / MMA / AutoAttack.

    python train_eval_part.py --help
"""
import sys

from utils.cli import main

if __name__ == "__main__":
    sys.exit(main("part"))
