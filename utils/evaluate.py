"""Natural, PGD-20, MMA and AutoAttack accuracy, printed in the official format."""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from attacks import autoattack, mma, pgd
from models import eval_mode
from utils.data import subset_indices

HEADERS = {"pgd20": "PGD", "mma": "MMA", "aa": "AA"}
EVAL_STEPS = 20


def _adversary(name: str, args: argparse.Namespace, num_classes: int):
    eps = args.eval_epsilon
    # Both start in +-eps clipped to [0, 1]: torchattacks' PGD (the official evaluation) and the
    # Madry start of the official mma.
    if name == "pgd20":
        return lambda m, x, y: pgd(m, x, y, eps, args.step_size, EVAL_STEPS, start="uniform_clipped")
    if name == "mma":
        return lambda m, x, y: mma(m, x, y, eps, args.step_size, EVAL_STEPS, start="uniform_clipped", k=3)
    if name == "aa":
        return lambda m, x, y: autoattack(m, x, y, eps, num_classes=num_classes, seed=0)
    raise ValueError(name)


def _count(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


def accuracy_line(correct: int, total: int, robust: int | None = None) -> str:
    line = f"Test: Accuracy: {correct}/{total} ({100.0 * correct / total:.2f}%)"
    if robust is not None:
        line += f", Robust Accuracy: {robust}/{total} ({100.0 * robust / total:.2f}%)"
    return line


def evaluate(model: nn.Module, loader: DataLoader, which: list[str], args: argparse.Namespace,
             num_classes: int, progress: bool = False, verbose: bool = True) -> dict:
    """Accuracies in percent, counts and seconds for each requested evaluation, with the model in eval
    mode (its mode is restored afterwards)."""
    with eval_mode(model):
        return _evaluate(model, loader, which, args, num_classes, progress, verbose)


def _evaluate(model: nn.Module, loader: DataLoader, which: list[str], args: argparse.Namespace,
              num_classes: int, progress: bool, verbose: bool) -> dict:
    device = next(model.parameters()).device
    total = len(loader.dataset)
    out: dict = {"total": total, "counts": {}, "seconds": {}}
    t0 = time.perf_counter()
    natural = sum(_count(model, x.to(device), y.to(device))
                  for x, y in tqdm(loader, desc="natural", disable=not progress, leave=False))
    out["seconds"]["natural"] = time.perf_counter() - t0
    if "natural" in which:
        out["natural"] = 100.0 * natural / total
        out["counts"]["natural"] = natural
        if verbose:
            print(accuracy_line(natural, total), flush=True)
    out["images"] = {name: total for name in which}
    for name in (w for w in which if w != "natural"):
        attack = _adversary(name, args, num_classes)
        t0 = time.perf_counter()
        # AutoAttack on a fixed subset (the same for every run and seed) when --aa-subset asks for one.
        subset = name == "aa" and bool(getattr(args, "aa_subset", None)) and args.aa_subset < total
        these = DataLoader(Subset(loader.dataset, subset_indices(total, args.aa_subset).tolist()),
                           batch_size=loader.batch_size) if subset else loader
        n = args.aa_subset if subset else total
        robust, clean_subset = 0, 0
        for x, y in tqdm(these, desc=name, disable=not progress, leave=False):
            x, y = x.to(device), y.to(device)
            if subset:
                clean_subset += _count(model, x, y)
            robust += _count(model, attack(model, x, y), y)
        clean = clean_subset if subset else natural
        out["seconds"][name] = time.perf_counter() - t0
        out[name] = 100.0 * robust / n
        out["counts"][name] = robust
        out["images"][name] = n
        if verbose:
            print(f"{HEADERS[name]}{'=' * 61}", flush=True)
            print(accuracy_line(clean, n, robust), flush=True)
    return out
