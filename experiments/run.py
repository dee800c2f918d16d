"""Run named reproduction runs, skipping those whose results JSON exists; every run is started with
`--resume auto`, so an interrupted one continues from its newest complete checkpoint (a mid-epoch one
after a SIGTERM included) and its evaluation from its progress file. Each run writes <results-dir>/<name>.json (args, history, the four
accuracies, seconds, device, git commit) and <name>.log; weights stay in <checkpoint-dir>/<name>/.

    python -m experiments.run --priority 1 --data-dir ../shared/data/cifar10-jpeg.zip
    python -m experiments.run --suite cpu-study --data-dir ../shared/data/cifar10-jpeg.zip  # every run of it
    python -m experiments.run part_seed1 at_seed1 --dry-run
    python -m experiments.run at_seed1 --extra "--loader resident --save-freq 5"   # flags no run of the table sets
    python -m experiments.run at_seed1 part_seed1 --jobs 2 --data-dir ...     # two at once on one GPU

With --jobs N, N runs go at once, each its own process and log, each with the machine's cores divided
by N as its torch threads (unless its flags give --threads); each run's results are the same as when it
runs alone at that thread count (every run seeds itself; nothing is shared but the device). Runs start
only from a tree whose tracked source files are committed (--allow-uncommitted overrides).

--extra adds flags that no run of the suite's table sets: a flag that the table gives a run (its seed,
its arm's flags, the suite's shared settings) or the runner gives every run (--model-dir, --results,
--resume) is refused, since a run's results go under its name; so is what the entry script would refuse.
Such a mistake, an --extra that is not a shell command line, and a --results-dir or --checkpoint-dir
that cannot be a folder are each one line (exit 2) before anything is written or started; --dry-run
writes nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from experiments.runs import SUITE_DIRS, SUITES
from part import VARIANTS
from common.argtypes import OneLineParser, positive_int
from runner.cli.args import build_parser, get_args
from runner.infra.provenance import default_threads, source_changes

REPO = Path(__file__).resolve().parent.parent
# Every run keeps a learning curve (1,000 fixed test images every 5 epochs, unless its flags say
# otherwise) and two mask grids.
COMMON = {"--eval-every": "5", "--eval-subset": "1000", "--save-masks": "8"}


@functools.lru_cache(maxsize=None)
def _parser(script: str) -> argparse.ArgumentParser:
    return build_parser(next(key for key, m in VARIANTS.items() if m.script == script))


def _action(script: str, token: str) -> argparse.Action | None:
    """The flag of `script` that `token` gives, read as its parser reads it: `--flag` and `--flag=value`,
    an alias (--map for --cam) as the same flag, a prefix only where the parser takes abbreviations (the
    entry scripts' OneLineParser does not: they refuse one)."""
    if not token.startswith("-"):
        return None
    parser, flag = _parser(script), token.split("=", 1)[0]
    action = parser._option_string_actions.get(flag)
    if action is None and parser.allow_abbrev and flag.startswith("--"):
        hits = {a for s, a in parser._option_string_actions.items() if s.startswith(flag)}
        action = hits.pop() if len(hits) == 1 else None
    return action


def flags_of(script: str, tokens: list[str]) -> dict[str, str]:
    """dest -> how `tokens` first give it (`--seed 1`, `--seed=1`, `--no-reweight`), for each flag of
    `script` in `tokens`."""
    found: dict[str, str] = {}
    for i, token in enumerate(tokens):
        action = _action(script, token)
        if action is not None and action.dest not in found:
            takes_value = action.nargs != 0 and "=" not in token and i + 1 < len(tokens)
            found[action.dest] = shlex.join(tokens[i:i + 2] if takes_value else [token])
    return found


def _parts(name: str, args: argparse.Namespace) -> tuple[str, list[str], list[str], list[str]]:
    """A run's script, its flags in the table, the flags the runner sets for it, and --extra's."""
    _, script, run_args = SUITES[args.suite][name]
    model_dir = Path(args.checkpoint_dir).resolve() / name
    runner = ["--data-dir", str(Path(args.data_dir).resolve()), "--model-dir", str(model_dir),
              "--results", str(Path(args.results_dir).resolve() / f"{name}.json"), "--no-progress",
              *(["--aa-subset", str(args.aa_subset)] if args.aa_subset else []), "--resume", "auto"]
    return script, shlex.split(run_args), runner, shlex.split(args.extra)


def command(name: str, args: argparse.Namespace) -> list[str]:
    script, own, runner, extra = _parts(name, args)
    given = flags_of(script, own + extra)
    unset = lambda flag: not flags_of(script, [flag]).keys() & given.keys()     # noqa: E731
    common = [t for flag, value in COMMON.items() if unset(flag) for t in (flag, value)]  # theirs win
    cmd = [sys.executable, str(REPO / script), *common, *own, *runner, *extra]
    if unset("--threads"):     # the cores shared among the runs that go at once
        cmd += ["--threads", str(default_threads(args.jobs))]
    return cmd


def table_flags(suite: str) -> dict[str, tuple[str, str]]:
    """dest -> (a run, how the table gives it that flag), for each flag that the suite's table gives any run:
    what tells its runs apart (the seed, --no-reweight, a mask rule) and the setting they share."""
    found: dict[str, tuple[str, str]] = {}
    for name, (_, script, run_args) in SUITES[suite].items():
        for dest, shown in flags_of(script, shlex.split(run_args)).items():
            found.setdefault(dest, (name, shown))
    return found


def extra_refusal(name: str, args: argparse.Namespace, table: dict[str, tuple[str, str]]) -> str | None:
    """Why --extra may not go with this run, or None: a flag that the suite's table (`table_flags`) or the
    runner sets (the results would go under a name that says otherwise), or what the run's script refuses."""
    script, own, runner, extra = _parts(name, args)
    mine, fixed = flags_of(script, own), flags_of(script, runner)
    for dest, token in flags_of(script, extra).items():
        flag = token.split(" ", 1)[0].split("=", 1)[0]
        if dest in mine:
            where = f"the run table (experiments/runs.py) gives {name} {mine[dest]}"
        elif dest in table:
            where = (f"the run table (experiments/runs.py) sets it for runs of suite {args.suite} "
                     f"({table[dest][0]}: {table[dest][1]})")
        elif dest in fixed:
            where = f"the runner gives every run {fixed[dest].split(' ', 1)[0]} from its own options"
        else:
            continue
        return (f"--extra {flag}: {where}, and a run's results go under its name; --extra may only add "
                "flags that neither the table nor the runner sets")
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            get_args(next(key for key, m in VARIANTS.items() if m.script == script), command(name, args)[2:])
    except SystemExit as exc:
        said = (err.getvalue().strip().split(": error: ", 1)[-1]
                or f"it would stop before training (exit code {exc.code})")
        return f"--extra {args.extra!r}: {script} refuses {name}'s command line: {said}"
    return None


def folder_refusal(option: str, folder: str) -> str | None:
    """Why `folder` cannot be made or written (a file on its path, no permission), or None."""
    path = Path(folder).absolute()
    for above in (path, *path.parents):
        if above.is_dir():
            if not os.access(above, os.W_OK | os.X_OK):
                return f"{option} {folder}: {above} is not writable"
            return None
        if os.path.lexists(above):
            return (f"{option} {folder}: it is a file, not a folder" if above == path
                    else f"{option} {folder}: {above} is a file, not a folder")
    return None


def suite_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--extra", default="", help="arguments appended to every run (quoted; one flag alone as "
                                                "--extra=--flag=value); not a flag that the run table sets for "
                                                "a run of the suite, nor one the runner sets")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="runs at once (one device shared)")
    p.add_argument("--aa-subset", type=positive_int, default=None, metavar="N",
                   help="AutoAttack on a fixed N test images in every run (the other evaluations on all)")
    p.add_argument("--allow-uncommitted", action="store_true",
                   help="start runs although tracked source files have changes not committed (each results JSON "
                        "lists them under source_changes); by default such a tree is refused")
    return p


def refusal(args: argparse.Namespace, names: list[str]) -> str | None:
    """Why the suite cannot start as asked (--extra, the folders, uncommitted source), before any run."""
    try:
        shlex.split(args.extra)
    except ValueError as exc:      # an unbalanced quote, a trailing backslash
        return f"--extra {args.extra!r} is not a shell command line: {exc}"
    for option, folder in (("--results-dir", args.results_dir), ("--checkpoint-dir", args.checkpoint_dir)):
        if (why := folder_refusal(option, folder)):
            return why
    table = table_flags(args.suite)
    for name in names:
        if (why := extra_refusal(name, args, table)):
            return " ".join(why.splitlines())
    changed = source_changes()
    if changed and not args.dry_run and not args.allow_uncommitted:
        return (f"tracked source files have changes not committed ({', '.join(changed[:5])}"
                f"{', ...' if len(changed) > 5 else ''}): commit them first, so that every run names the code it "
                "ran (or --allow-uncommitted, recorded in each results JSON)")
    return None


def main(argv: list[str] | None = None) -> int:
    p = suite_parser()
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
    why = refusal(args, names)
    if why:
        p.error(why)
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

    if todo:                       # the logs' folder, once a run is to start (a dry run writes nothing)
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = list(pool.map(launch, todo))
    status = next((c for c in codes if c), 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
