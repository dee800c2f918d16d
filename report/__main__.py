"""Report over results JSON files: a markdown table (each PART variant minus its baseline), training
curves per run, and the accuracy-robustness trade-off plot.

    python -m report results/*.json -o results/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report.groups import arms, base_method, distinct_runs, load_runs, name_apart
from report.plots import plot_arm_curves, plot_arms, plot_curves, plot_tradeoff, robust_axis
from report.tables import markdown_table
from common.argtypes import OneLineParser


def write_report(paths: list[str], out: Path, drop_duplicates: bool = False) -> list[Path]:
    """The table and pictures in `out`. A second results file of one run (groups.same_run) is refused before
    anything is written, or left out with drop_duplicates; runs that share a name are renamed apart
    (groups.name_apart); either said on stdout."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out} is a file: name a folder for the table and pictures")
    runs, dropped = distinct_runs(load_runs(paths))
    for again, first, why in dropped:
        same = f"{again['file']} is the same run as {first['file']} ({why})"
        if not drop_duplicates:
            raise ValueError(f"{same}: give each run once, or add --drop-duplicates to keep the first")
        print(f"dropped {same}")
    for r in name_apart(runs):
        print(f"{r['file']} is run {r['name']} in the table and curves_{r['name']}.png (another file has its name)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot make the folder -o {out}: {exc.strerror or exc}") from None
    written = [out / "table.md"]
    written[0].write_text(markdown_table(runs))
    for r in runs:
        path = out / f"curves_{r['name']}.png"
        plot_curves(r, path)
        written.append(path)
    written.append(out / "tradeoff.png")
    plot_tradeoff(runs, written[-1], robust_axis(runs))
    # The arm pictures, one pair per base method (AT's arms apart from TRADES's: other scales, other
    # losses); named by the base method when the results hold several.
    families: dict[str, list[dict]] = {}
    for r in runs:
        families.setdefault(base_method(r), []).append(r)
    for base, members in families.items():
        if any(len(m) >= 2 for m in arms(members).values()):      # seeds: the arm pictures
            suffix = f"_{base}" if len(families) > 1 else ""
            written += [out / f"arms_tradeoff{suffix}.png", out / f"arms_curves{suffix}.png"]
            plot_arms(members, written[-2], robust_axis(members))
            plot_arm_curves(members, written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m report", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="results JSON files")
    p.add_argument("-o", "--out", default="results", help="output folder")
    p.add_argument("--drop-duplicates", action="store_true",
                   help="keep the first of results files that are one run (the same file, run_id, or settings and "
                        "seed), naming the others (default: refuse them)")
    args = p.parse_args(argv)
    try:
        for path in write_report(args.results, Path(args.out), args.drop_duplicates):
            print(path)
    except ValueError as exc:
        print(f"python -m report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
