"""Report over results JSON files: a markdown table (each PART variant minus its baseline), training
curves per run, and the accuracy-robustness trade-off plot.

    python -m utils.report results/*.json -o results/
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from utils.args import OneLineParser  # noqa: E402

METRICS = (("natural", "natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AA"))
BASE_OF = {"PART": "AT", "PART-T": "TRADES", "PART-M": "MART"}
# Settings a run and its baseline must share to be compared.
PAIR_KEYS = ("seed", "data", "model", "epochs", "warm_up", "epsilon", "train_subset", "test_subset")


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        try:
            run = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read results file {p}: {exc}") from None
        if not isinstance(run, dict) or "method" not in run or "args" not in run:
            raise ValueError(f"{p} is not a results file of train_eval_part*.py")
        run["name"] = Path(p).stem if Path(p).stem != "results" else Path(p).parent.name
        runs.append(run)
    return runs


def pair_key(run: dict) -> tuple:
    return tuple(json.dumps(run["args"].get(k)) for k in PAIR_KEYS)


def baseline_of(run: dict, runs: list[dict]) -> dict | None:
    base = BASE_OF.get(run["method"])
    matches = [r for r in runs if r["method"] == base and pair_key(r) == pair_key(run)]
    return matches[0] if matches else None


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _delta(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a - b:+.2f}"


def markdown_table(runs: list[dict]) -> str:
    head = ["run", "method", "seed", "epochs"] + [m for _, m in METRICS] + ["baseline"] + [f"Δ {m}" for _, m in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        b = baseline_of(r, runs)
        cells = [r["name"], r["method"], str(r["args"].get("seed")), str(r.get("epochs_done"))]
        cells += [_fmt(r.get(k)) for k, _ in METRICS]
        cells += [b["name"] if b else "–"] + [_delta(r.get(k), b.get(k)) if b else "–" for k, _ in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    summary = seed_summary(runs)
    if summary:
        lines += ["", "Mean ± standard deviation over seeds (runs sharing method and settings, seed aside):", ""]
        lines += ["| method | seeds | " + " | ".join(m for _, m in METRICS) + " |", "|" + "---|" * (2 + len(METRICS))]
        lines += summary
    return "\n".join(lines) + "\n"


def seed_summary(runs: list[dict]) -> list[str]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        key = (r["method"],) + tuple(json.dumps(r["args"].get(k)) for k in PAIR_KEYS if k != "seed")
        groups.setdefault(key, []).append(r)
    rows = []
    for key, members in groups.items():
        if len({m["args"].get("seed") for m in members}) < 2:
            continue
        cells = []
        for k, _ in METRICS:
            vals = [m[k] for m in members if m.get(k) is not None]
            cells.append("–" if len(vals) < 2 else f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}")
        rows.append(f"| {key[0]} | {len(members)} | " + " | ".join(cells) + " |")
    return rows


def plot_curves(run: dict, path: Path) -> None:
    hist = run.get("history", [])
    fig, (ax_loss, ax_lr, ax_acc) = plt.subplots(1, 3, figsize=(12, 3.2))
    epochs = [h["epoch"] for h in hist]
    ax_loss.plot(epochs, [h["loss"] for h in hist], marker=".")
    ax_loss.set_title("training loss")
    ax_lr.plot(epochs, [h["lr"] for h in hist], marker=".")
    ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate")
    evals = [h for h in hist if "natural" in h]
    if evals:
        ax_acc.plot([h["epoch"] for h in evals], [h["natural"] for h in evals], marker="o", label="natural")
        ax_acc.plot([h["epoch"] for h in evals], [h["pgd20"] for h in evals], marker="o", label="PGD-20")
        ax_acc.legend()
    else:
        ax_acc.text(0.5, 0.5, "no --eval-every history", ha="center", va="center", transform=ax_acc.transAxes)
    ax_acc.set_title("test accuracy (%)")
    warm = run["args"].get("warm_up", 0)
    for ax in (ax_loss, ax_lr, ax_acc):
        ax.set_xlabel("epoch")
        if warm and epochs and warm < max(epochs):
            ax.axvline(warm + 0.5, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(f"{run['name']} ({run['method']}); dashed line: end of warm-up")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_tradeoff(runs: list[dict], path: Path, robust: str = "aa") -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    label = dict(METRICS)[robust]
    shown = [r for r in runs if r.get("natural") is not None and r.get(robust) is not None]
    for r in shown:
        ax.scatter(r[robust], r["natural"], s=25)
        ax.annotate(r["name"], (r[robust], r["natural"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        b = baseline_of(r, runs)
        if b is not None and b.get(robust) is not None and b.get("natural") is not None:
            ax.annotate("", xy=(r[robust], r["natural"]), xytext=(b[robust], b["natural"]),
                        arrowprops={"arrowstyle": "->", "color": "tab:red"})
    if not shown:
        ax.text(0.5, 0.5, f"no run has natural and {label} accuracy", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{label} accuracy (%)")
    ax.set_ylabel("natural accuracy (%)")
    ax.set_title("accuracy-robustness trade-off (arrow: baseline → PART variant)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    plot_tradeoff(runs, written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m utils.report", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="results JSON files")
    p.add_argument("-o", "--out", default="results", help="output folder")
    args = p.parse_args(argv)
    try:
        for path in write_report(args.results, Path(args.out)):
            print(path)
    except ValueError as exc:
        print(f"python -m utils.report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
