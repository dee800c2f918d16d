"""Round 3's gradient-masking checks: `python -m studies.masking` on every retrained CIFAR-10 model of the
suite cpu-study-4 (masking_<arm>_seed<N>: the input-gradient arm, round 2's paper rule, AT), the transfer
attack made on the AT model of the same seed; results to <results-dir>/masking/<arm>_seed<N>.json, read by
`python -m report.round3`. A check whose results exist is skipped; one whose models are not trained yet is
named and skipped.

    python -m experiments.masking --data-dir ../shared/data/cifar10-jpeg.zip [--jobs 2]
"""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common.argtypes import OneLineParser, positive_int
from experiments.runs import STUDY2_EXTRA_SEEDS, STUDY_SEEDS, SUITE_DIRS

ARMS = ("cifar_gradient", "part_paper", "at")
FINAL = "epoch10.pt"          # the study's last epoch


def checks(results: Path, checkpoints: Path) -> list[tuple[str, list[str]]]:
    """(name, command) of every check not yet made whose target and source models exist."""
    out = []
    for seed in STUDY_SEEDS + STUDY2_EXTRA_SEEDS:
        source = checkpoints / f"masking_at_seed{seed}" / FINAL
        for arm in ARMS:
            target, done = checkpoints / f"masking_{arm}_seed{seed}" / FINAL, results / "masking" / f"{arm}_seed{seed}.json"
            if done.exists():
                continue
            if not (target.exists() and source.exists()):
                print(f"{arm}_seed{seed}: its models are not trained yet ({target}, {source})", flush=True)
                continue
            out.append((f"{arm}_seed{seed}", [sys.executable, "-m", "studies.masking", str(target), "--source",
                                             str(source), "--out", str(done), "--threads", "1"]))
    return out


def main(argv: list[str] | None = None) -> int:
    results, checkpoints = SUITE_DIRS["cpu-study-4"]
    p = OneLineParser(prog="python -m experiments.masking", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--results-dir", type=Path, default=Path(results))
    p.add_argument("--checkpoint-dir", type=Path, default=Path(checkpoints))
    p.add_argument("--jobs", type=positive_int, default=1, help="checks at once (1 thread each)")
    args = p.parse_args(argv)

    def run(item: tuple[str, list[str]]) -> int:
        name, cmd = item
        done = subprocess.run([*cmd, "--data-dir", args.data_dir], capture_output=True, text=True)
        print(f"{name}: {done.stdout.strip() or done.stderr.strip()[-300:]}", flush=True)
        return done.returncode

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(run, checks(args.results_dir, args.checkpoint_dir)))
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main())
