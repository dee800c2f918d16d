"""Report over results JSON files: a markdown table (each PART variant minus its baseline), training
curves per run, and the accuracy-robustness trade-off plot.

    python -m report results/*.json -o results/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report.groups import arms, base_method, load_runs
from report.plots import plot_arm_curves, plot_arms, plot_curves, plot_tradeoff, robust_axis
from report.tables import markdown_table
from utils.argtypes import OneLineParser


def write_report(paths: list[str], out: Path) -> list[Path]:
    runs = load_runs(paths)
    out.mkdir(parents=True, exist_ok=True)
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
    args = p.parse_args(argv)
    try:
        for path in write_report(args.results, Path(args.out)):
            print(path)
    except ValueError as exc:
        print(f"python -m report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
