"""Comparisons the tests share: a checkpoint's weights, bit-for-bit equality of state dicts, and
results without what differs by construction between two runs of the same training."""
from __future__ import annotations

from pathlib import Path

import torch

from runner.infra.checkpoint import load_checkpoint


def weights(path: Path) -> dict:
    return load_checkpoint(path, torch.device("cpu"))["model"]


def same(a: dict, b: dict) -> bool:
    """The same keys and every tensor equal bit for bit."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def comparable(results: dict) -> dict:
    """Results without timings and the paths, resume records and run ids that differ by construction."""
    out = {k: v for k, v in results.items() if k not in ("seconds", "args", "resumes", "git_commit", "run_id")}
    out["history"] = [{k: v for k, v in r.items() if k != "seconds"} for r in results["history"]]
    return out
