"""Run named reproduction runs, skipping those whose results JSON exists; every run is started with
`--resume auto`, so an interrupted one continues from its newest complete checkpoint (a mid-epoch one
after a SIGTERM included) and its evaluation from its progress file. Each run writes <results-dir>/<name>.json (args, history, the four
accuracies, seconds, device, git commit) and <name>.log; weights stay in <checkpoint-dir>/<name>/.

    python -m experiments.run --priority 1 --data-dir ../shared/data/cifar10-jpeg.zip
    python -m experiments.run --suite cpu-study --data-dir ../shared/data/cifar10-jpeg.zip  # every run of it
    python -m experiments.run part_seed1 at_seed1 --dry-run
    python -m experiments.run at_seed1 --extra "--model smallcnn --epochs 2"   # a quick try
    python -m experiments.run at_seed1 part_seed1 --jobs 2 --data-dir ...     # two at once on one GPU

With --jobs N, N runs go at once, each its own process and log, each with the machine's cores divided
by N as its torch threads (unless its flags give --threads); each run's results are the same as when it
runs alone at that thread count (every run seeds itself; nothing is shared but the device). Runs start
only from a tree whose tracked source files are committed (--allow-uncommitted overrides).
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from experiments.runs import SUITE_DIRS, SUITES
from utils.argtypes import OneLineParser, positive_int
from utils.infra.provenance import default_threads, source_changes

REPO = Path(__file__).resolve().parent.parent
# Every run keeps a learning curve (1,000 fixed test images every 5 epochs, unless its flags say
# otherwise) and two mask grids.
COMMON = {"--eval-every": "5", "--eval-subset": "1000", "--save-masks": "8"}


def command(name: str, args: argparse.Namespace) -> list[str]:
    _, script, run_args = SUITES[args.suite][name]
    model_dir = Path(args.checkpoint_dir).resolve() / name
    own, extra = shlex.split(run_args), shlex.split(args.extra)
    common = [t for flag, value in COMMON.items() if flag not in own + extra for t in (flag, value)]  # theirs win
    cmd = [sys.executable, str(REPO / script), *common, *own,
           "--data-dir", str(Path(args.data_dir).resolve()), "--model-dir", str(model_dir),
           "--results", str(Path(args.results_dir).resolve() / f"{name}.json"), "--no-progress",
           *(["--aa-subset", str(args.aa_subset)] if args.aa_subset else []), "--resume", "auto", *extra]
    if "--threads" not in cmd:     # the cores shared among the runs that go at once
        cmd += ["--threads", str(default_threads(args.jobs))]
    return cmd


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m experiments.run", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="runs of the suite to do (--list names them)")
    p.add_argument("--suite", default="reproduction", choices=tuple(SUITES),
                   help="reproduction (ResNet-18, the official schedule), cpu-study (the CPU-scale study) or "
                        "cpu-study-2 (its second round, results/cpu-study/round2)")
    p.add_argument("--priority", type=int, action="append", default=[], help="add every run of this priority")
    p.add_argument("--list", action="store_true", help="print the suite's runs (name, priority, arguments) and stop")
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--results-dir", default=None, help="default: results (reproduction), results/<suite> (others)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="default: checkpoint/runs (reproduction), checkpoint/<suite> (others)")
    p.add_argument("--extra", default="", help="arguments appended to every run (quoted)")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="runs at once (one device shared)")
    p.add_argument("--aa-subset", type=positive_int, default=None, metavar="N",
                   help="AutoAttack on a fixed N test images in every run (the other evaluations on all)")
    p.add_argument("--allow-uncommitted", action="store_true",
                   help="start runs although tracked source files have changes not committed (each results JSON "
                        "lists them under source_changes); by default such a tree is refused")
    args = p.parse_args(argv)
    runs = SUITES[args.suite]
    default_dirs = SUITE_DIRS.get(args.suite, (f"results/{args.suite}", f"checkpoint/{args.suite}"))
    args.results_dir = args.results_dir or default_dirs[0]
    args.checkpoint_dir = args.checkpoint_dir or default_dirs[1]
    if args.list:
        for name, (prio, script, run_args) in runs.items():
            print(f"{name} (priority {prio}): {script} {run_args}")
        return 0
    unknown = [n for n in args.names if n not in runs]
    if unknown:
        p.error(f"unknown run {', '.join(unknown)} in suite {args.suite}; known: {', '.join(runs)}")
    everything = args.suite != "reproduction" and not args.names and not args.priority
    names = list(dict.fromkeys(args.names + [n for n, (prio, _, _) in runs.items()
                                             if prio in args.priority or everything]))
    if not names:
        p.error("name at least one run or --priority (a suite other than reproduction: none means all)")
    changed = source_changes()
    if changed and not args.dry_run and not args.allow_uncommitted:
        p.error(f"tracked source files have changes not committed ({', '.join(changed[:5])}"
                f"{', ...' if len(changed) > 5 else ''}): commit them first, so that every run names the code it "
                "ran (or --allow-uncommitted, recorded in each results JSON)")
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    todo = []
    for name in names:
        if (Path(args.results_dir) / f"{name}.json").exists():
            print(f"{name}: results exist, skipped", flush=True)
            continue
        cmd = command(name, args)
        print(f"{name}: {shlex.join(cmd)}", flush=True)
        if not args.dry_run:
            todo.append((name, cmd))

    def launch(job: tuple[str, list[str]]) -> int:
        name, cmd = job
        with open(Path(args.results_dir) / f"{name}.log", "a") as log:
            code = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
        if code == 0:   # the run's mask grids beside its results (pictures are committed, weights never)
            for grid in sorted((Path(args.checkpoint_dir) / name).glob("masks_epoch*.png")):
                shutil.copyfile(grid, Path(args.results_dir) / f"{name}_{grid.name}")
        print(f"{name}: exit code {code}", flush=True)
        return code

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(launch, todo))
    status = next((c for c in codes if c), 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
