"""Two CPU runs on one machine: one after the other (each with every core) against both at once (each
with its share of the cores, as `experiments.run --jobs 2` gives them), in total wall time. A
benchmark, not a test: run it on an otherwise idle machine.

    python -m bench.jobs --data-dir ../shared/data/cifar10-jpeg.zip

Prints a markdown table (wall seconds of each run, the total) with the CPU, its cores and torch.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.argtypes import OneLineParser
from runner.infra.provenance import REPO, cores_available, cpu_model, default_threads

# A tiny run of the CPU study's kind (smallcnn-bn, batch 32): AT warm-up, then PART.
TINY = ["--model", "smallcnn-bn", "--channels-last", "--batch-size", "32", "--lr", "0.05", "--train-subset", "2000",
        "--test-subset", "500", "--epochs", "2", "--warm-up", "1", "--eval", "natural,pgd20", "--no-progress"]


def start(name: str, threads: int, data_dir: str, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(REPO / "train_eval_part.py"), *TINY, "--seed", "1" if name == "a" else "2",
           "--threads", str(threads), "--data-dir", data_dir, "--model-dir", str(out / name),
           "--results", str(out / f"{name}.json"), "--overwrite"]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait(p: subprocess.Popen, t0: float) -> float:
    _, err = p.communicate()
    if p.returncode:
        raise SystemExit(f"python -m bench.jobs: a run failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bench.jobs", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    args = p.parse_args(argv)
    cores = cores_available()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        seq = []
        for name in ("a", "b"):
            t = time.perf_counter()
            seq.append(wait(start(name, cores, args.data_dir, out), t))
        seq_total = time.perf_counter() - t0
        t0 = time.perf_counter()
        procs = [start(name, default_threads(2), args.data_dir, out) for name in ("a", "b")]
        both = [wait(proc, t0) for proc in procs]
        both_total = time.perf_counter() - t0
    import torch
    print(f"CPU: {cpu_model()}, {cores} cores | torch {torch.__version__} | {time.strftime('%Y-%m-%d')}\n")
    print("| how | threads per run | run a (s) | run b (s) | total wall (s) |\n|---|---|---|---|---|")
    print(f"| one after the other | {cores} | {seq[0]:.1f} | {seq[1]:.1f} | {seq_total:.1f} |")
    print(f"| both at once (--jobs 2) | {default_threads(2)} | {both[0]:.1f} | {both[1]:.1f} | {both_total:.1f} |")
    print(f"\nboth at once / one after the other: {both_total / seq_total:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
