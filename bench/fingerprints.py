"""Bit-for-bit check of a restructuring: tiny runs of every training path and one evaluation, each
reduced to the SHA-256 of its final weights (first 16 hex digits) and its counts.

    python -m bench.fingerprints --data-dir ../shared/data/cifar10-jpeg.zip [--out FILE] [--only NAME ...]

Run it at the commit before a change and after it, nothing else running: the two outputs must be
identical. Each run is a subprocess with 1 torch thread (CPU results depend on the thread count):
smallcnn-bn, 256 training / 64 test images, batch 32, 2 epochs of which 1 warm-up, 3 attack steps.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TINY = ["--model", "smallcnn-bn", "--train-subset", "256", "--test-subset", "64", "--batch-size", "32",
        "--lr", "0.05", "--epochs", "2", "--warm-up", "1", "--num-steps", "3", "--threads", "1", "--no-progress",
        "--eval", "natural,pgd20"]
# name -> (script, extra flags): every training path of the three scripts and the controls.
RUNS = {
    "AT": ("train_eval_part.py", ["--no-reweight"]),
    "PART": ("train_eval_part.py", []),
    "PART-T": ("train_eval_part_t.py", []),
    "PART-M": ("train_eval_part_m.py", []),
    "PART-AWP": ("train_eval_part.py", ["--awp-gamma", "5e-3"]),
    "PART-official-pairing": ("train_eval_part.py", ["--cam-refresh", "official"]),
    "PART-MMA": ("train_eval_part.py", ["--attack", "mma"]),
    "PART-top": ("train_eval_part.py", ["--mask-rule", "top", "--top-share", "0.2"]),
    "PART-cam-xgradcam": ("train_eval_part.py", ["--mask-rule", "cam", "--cam", "xgradcam"]),
    "AT-random": ("train_eval_part.py", ["--mask-rule", "random", "--random-share", "0.2"]),
    "AT-region": ("train_eval_part.py", ["--warm-up", "0", "--mask-rule", "region", "--region-eps", "ul=6/255"]),
    "AT-region-start-epsilon": ("train_eval_part.py", ["--warm-up", "0", "--mask-rule", "region", "--region-eps",
                                                       "ul=6/255", "--region-start", "epsilon"]),
    "PART-bf16": ("train_eval_part.py", ["--precision", "bf16"]),
    "PART-resident": ("train_eval_part.py", ["--loader", "resident"]),
    "PART-no-rand-init": ("train_eval_part.py", ["--rand_init", "false"]),
    "PART-clip-start": ("train_eval_part.py", ["--clip-part-start"]),
    "PART-T-official-pairing": ("train_eval_part_t.py", ["--cam-refresh", "official", "--mask-rule", "top",
                                                         "--top-share", "0.3"]),
}


def run_one(name: str, data_dir: str, work: Path) -> dict:
    script, extra = RUNS[name]
    out = work / name
    cmd = [sys.executable, script, "--data-dir", data_dir, *TINY, *extra, "--model-dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()})
    if done.returncode:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    entry = {"weights": fingerprint(out / "epoch2.pt"), "counts": results["counts"]}
    if name == "PART":        # one evaluation of a checkpoint: natural, PGD-20, MMA and cam-info, per image
        ev = [sys.executable, script, "--eval-only", str(out / "epoch2.pt"), "--data-dir", data_dir,
              "--threads", "1", "--no-progress", "--eval", "natural,pgd20,mma,cam-info", "--results",
              str(work / "eval.json")]
        done = subprocess.run(ev, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()})
        if done.returncode:
            raise SystemExit(f"evaluation failed ({done.returncode}):\n{done.stderr[-2000:]}")
        ev_results = json.loads((work / "eval.json").read_text())
        entry["eval_counts"] = ev_results["counts"]
        entry["eval_cam_info"] = ev_results.get("cam_info")
    return entry


def _env() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def fingerprint(path: Path) -> str:
    import torch

    from runner.infra.checkpoint import state_fingerprint
    return state_fingerprint(torch.load(path, map_location="cpu", weights_only=True)["model"])[:16]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", help="write the fingerprints as JSON here too")
    p.add_argument("--only", nargs="*", choices=tuple(RUNS), help="these runs alone")
    a = p.parse_args()
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.only or RUNS:
            found[name] = run_one(name, a.data_dir, Path(tmp))
            print(name, json.dumps(found[name], sort_keys=True), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
