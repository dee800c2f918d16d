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

from utils.args import EARLIER_DEFAULTS, OneLineParser, report_ignores, reweighting_only
from utils.files import PROGRESS_SUFFIX
from utils.methods import BASE_OF
from utils.rules import CAM_FREE_RULES

METRICS = (("natural", "natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AA"), ("aa-standard", "AA (standard)"))
# Runs are averaged together, or paired with a baseline, only when all their settings agree: every
# recorded argument except those whose Role (utils/args.py) is NONE, the script and the seed.
NOT_SETTINGS = report_ignores()
# Settings only the pixel reweighting reads (Role.REWEIGHTING): a baseline (--no-reweight) ignores them.
PART_ONLY = reweighting_only()


def load_runs(paths: list[str]) -> list[dict]:
    """The results files among `paths`; an unfinished evaluation's progress file (a run still going,
    `results/*.json` matches it) is passed over, anything else unreadable is an error."""
    runs = []
    for p in paths:
        if str(p).endswith(PROGRESS_SUFFIX):
            continue
        try:
            run = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read results file {p}: {exc}") from None
        if not isinstance(run, dict) or "method" not in run or "args" not in run:
            raise ValueError(f"{p} is not a results file of train_eval_part*.py")
        run["name"] = Path(p).stem if Path(p).stem != "results" else Path(p).parent.name
        runs.append(run)
    return runs


def settings(run: dict, drop: frozenset = frozenset()) -> tuple:
    """The run's settings (NOT_SETTINGS and `drop` left out) as a hashable, comparable key."""
    args = {**EARLIER_DEFAULTS, **run["args"]}      # results made before a setting existed
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in args.items()
                        if k not in NOT_SETTINGS and k not in drop))


def group_key(run: dict) -> tuple:
    """Runs with equal keys differ in their seed at most."""
    return (run["method"], settings(run, frozenset({"seed"})))


def grouped(runs: list[dict]) -> dict[tuple, list[dict]]:
    """The runs by group_key (an arm: one setting over seeds), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(group_key(r), []).append(r)
    return groups


def base_method(run: dict) -> str:
    """The run's base method (AT, TRADES, MART): its own label for a baseline."""
    return BASE_OF.get(run["method"], run["method"])


def baseline_candidates(run: dict, runs: list[dict]) -> list[dict]:
    """The baseline runs whose settings equal this run's except --no-reweight (and the settings that
    only the reweighting reads), the seed included."""
    base = BASE_OF.get(run["method"])
    if base is None:
        return []
    key = (run["args"].get("seed"), settings(run, PART_ONLY))
    return [r for r in runs if r["method"] == base and (r["args"].get("seed"), settings(r, PART_ONLY)) == key]


def baseline_of(run: dict, runs: list[dict]) -> dict | None:
    """The one matching baseline; None when there is none or several (which one would be a guess)."""
    matches = baseline_candidates(run, runs)
    return matches[0] if len(matches) == 1 else None


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
        many = baseline_candidates(r, runs) if b is None else []
        cells += [b["name"] if b else f"ambiguous: {', '.join(m['name'] for m in many)}" if many else "–"]
        cells += [_delta(r.get(k), b.get(k)) if b else "–" for k, _ in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    summary = seed_summary(runs)
    if summary:
        lines += ["", "Mean ± standard deviation over seeds (runs whose settings agree, seed aside):", ""]
        lines += ["| method | runs | " + " | ".join(m for _, m in METRICS) + " |", "|" + "---|" * (2 + len(METRICS))]
        lines += summary
    paired = paired_differences(runs)
    if paired:
        lines += ["", "Paired differences, seed by seed (arms whose settings agree except the reweighting's own): "
                  "mean [95 % t-interval] over the common seeds; * marks an interval that excludes 0:", ""]
        lines += ["| difference | seeds | " + " | ".join(f"Δ {m}" for _, m in METRICS) + " |",
                  "|" + "---|" * (2 + len(METRICS))]
        lines += paired
    return "\n".join(lines) + "\n"


def seed_summary(runs: list[dict]) -> list[str]:
    groups = grouped(runs)
    groups = {k: m for k, m in groups.items() if len({r["args"].get("seed") for r in m}) >= 2}
    rows = []
    for key, members in groups.items():
        cells = []
        for k, _ in METRICS:
            vals = [m[k] for m in members if m.get(k) is not None]
            cells.append("–" if len(vals) < 2 else f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}")
        rows.append(f"| {group_label(key, groups)} | {len(members)} | " + " | ".join(cells) + " |")
    return rows


def arm_kind(run: dict) -> str:
    """baseline (--no-reweight), cam (a CAM decides the budgets) or fixed (a CAM-free rule)."""
    a = run["args"]
    return "baseline" if a.get("no_reweight") else "fixed" if a.get("mask_rule") in CAM_FREE_RULES else "cam"


def arm_pairs(runs: list[dict]) -> list[tuple[list[dict], list[dict], str]]:
    """(arm A, arm B, label) to compare seed by seed: within runs of one base method whose settings
    agree except the seed and the reweighting's own (PART_ONLY), every arm minus the baseline, and every
    CAM arm minus every CAM-free arm (PART minus random placement, minus uniform budgets). An arm: runs
    of one group_key."""
    groups = grouped(runs)
    families: dict[tuple, list[tuple]] = {}
    for key, members in groups.items():     # a family: one base method (PART-T with TRADES, never MART)
        family = (base_method(members[0]), settings(members[0], PART_ONLY | {"seed"}))
        families.setdefault(family, []).append(key)
    pairs = []
    for keys in families.values():
        kind = {k: arm_kind(groups[k][0]) for k in keys}
        label = {k: group_label(k, {q: groups[q] for q in keys}) for k in keys}
        for a in keys:
            for b in keys:
                if (kind[b] == "baseline" and kind[a] != "baseline") or (kind[a] == "cam" and kind[b] == "fixed"):
                    pairs.append((groups[a], groups[b], f"{label[a]} − {label[b]}"))
    return pairs


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of paired differences (at least 2)."""
    from scipy import stats
    m = statistics.mean(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return m, m - half, m + half


def paired_differences(runs: list[dict]) -> list[str]:
    rows = []
    for a, b, label in arm_pairs(runs):
        by_seed = {r["args"].get("seed"): r for r in b}
        matched = [(r, by_seed[r["args"].get("seed")]) for r in a if r["args"].get("seed") in by_seed]
        if len(matched) < 2:
            continue
        cells = []
        for k, _ in METRICS:
            diffs = [x[k] - y[k] for x, y in matched if x.get(k) is not None and y.get(k) is not None]
            if len(diffs) < 2:
                cells.append("–")
                continue
            m, lo, hi = t_interval(diffs)
            cells.append(f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" + ("" if lo <= 0 <= hi else " *"))
        rows.append(f"| {label} | {len(matched)} | " + " | ".join(cells) + " |")
    return rows


def group_label(key: tuple, groups: dict[tuple, list[dict]]) -> str:
    """The method, plus the settings in which this group differs from the other summarised groups of
    that method."""
    method, mine = key
    others = [dict(k[1]) for k in groups if k[0] == method and k != key]
    mine = dict(mine)
    differ = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
    return method + "".join(f", {k}={json.loads(mine[k])}" for k in differ)


def _pyplot():
    import matplotlib   # only when a picture is drawn: the table and the command line need neither
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(run: dict, path: Path) -> None:
    plt = _pyplot()
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
    plt = _pyplot()
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


def _arms(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by group_key, with each group's label (for the arm pictures)."""
    groups = grouped(runs)
    return {group_label(k, groups): m for k, m in groups.items()}


def plot_arms(runs: list[dict], path: Path, robust: str = "aa") -> None:
    """Natural against robust accuracy: every run a point, each arm's mean a large marker."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    label = dict(METRICS)[robust]
    for i, (arm, members) in enumerate(_arms(runs).items()):
        pts = [(r[robust], r["natural"]) for r in members if r.get(robust) is not None and r.get("natural") is not None]
        if not pts:
            continue
        color = f"C{i}"
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=color, alpha=0.6)
        mx, my = statistics.mean(p[0] for p in pts), statistics.mean(p[1] for p in pts)
        ax.scatter([mx], [my], s=140, marker="X", color=color, edgecolor="black", label=f"{arm} (n={len(pts)})")
    ax.set_xlabel(f"{label} accuracy (%)")
    ax.set_ylabel("natural accuracy (%)")
    ax.set_title("every seed a point, arm means marked ✕", fontsize=9)
    if ax.collections:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_arm_curves(runs: list[dict], path: Path) -> None:
    """Per arm, the mean over its runs of the training loss and of the periodic natural and PGD-20
    accuracy (--eval-every), against the epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for i, (arm, members) in enumerate(_arms(runs).items()):
        for ax, key in zip(axes, ("loss", "natural", "pgd20")):
            by_epoch: dict[int, list[float]] = {}
            for r in members:
                for h in r.get("history", []):
                    if h.get(key) is not None:
                        by_epoch.setdefault(h["epoch"], []).append(h[key])
            if by_epoch:
                epochs = sorted(by_epoch)
                ax.plot(epochs, [statistics.mean(by_epoch[e]) for e in epochs], marker=".", color=f"C{i}",
                        label=f"{arm} (n={len(members)})")
    titles = ("training loss", "natural accuracy (%), periodic subset", "PGD-20 accuracy (%), periodic subset")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
    if axes[0].lines:
        axes[0].legend(fontsize=7)
    warm = runs[0]["args"].get("warm_up", 0) if runs else 0
    for ax in axes:
        if warm:
            ax.axvline(warm + 0.5, color="grey", linestyle="--", linewidth=1)
    fig.suptitle("mean over seeds per arm; dashed line: end of warm-up", fontsize=9)
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
    # The arm pictures, one pair per base method (AT's arms apart from TRADES's: other scales, other
    # losses); named by the base method when the results hold several.
    families: dict[str, list[dict]] = {}
    for r in runs:
        families.setdefault(base_method(r), []).append(r)
    for base, members in families.items():
        if any(len(m) >= 2 for m in _arms(members).values()):      # seeds: the arm pictures
            suffix = f"_{base}" if len(families) > 1 else ""
            written += [out / f"arms_tradeoff{suffix}.png", out / f"arms_curves{suffix}.png"]
            plot_arms(members, written[-2])
            plot_arm_curves(members, written[-1])
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
