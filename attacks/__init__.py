"""Attacks, one per module, with the common call `attack(model, x, y, epsilon, step_size, steps, ...)`."""
from attacks.autoattack import autoattack
from attacks.autoattack_standard import autoattack_standard
from attacks.mma import mma
from attacks.pgd import pgd
from attacks.trades import trades

TRAIN_ATTACKS = {"pgd": pgd, "mma": mma}

__all__ = ["pgd", "mma", "trades", "autoattack", "autoattack_standard", "TRAIN_ATTACKS"]
