"""Attacks, one per module, with the common call `attack(model, x, y, epsilon, step_size, steps, ...)`."""
from attacks.autoattack import autoattack
from attacks.autoattack_standard import autoattack_standard
from attacks.mma import mma
from attacks.pgd import pgd
from attacks.trades import trades

# The training attacks by name (utils.method.methods.Method.attack; --attack chooses between pgd and mma).
TRAIN_ATTACKS = {"pgd": pgd, "mma": mma, "trades": trades}

__all__ = ["pgd", "mma", "trades", "autoattack", "autoattack_standard", "TRAIN_ATTACKS"]
