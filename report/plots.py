"""The report's pictures: each run's training curves, the accuracy-robustness trade-off, each arm's
seeds and mean, the arms' mean curves."""
from __future__ import annotations

import statistics
import textwrap
from pathlib import Path

from report.groups import METRICS, arms, baseline_of


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


def robust_axis(runs: list[dict]) -> str:
    """The pictures' robust accuracy: the AutoAttack that the most runs have (torchattacks' on a tie),
    PGD-20 where no run has one — so that a study whose later seeds ran one AutoAttack alone shows them all."""
    counts = {k: sum(r.get(k) is not None for r in runs) for k in ("aa", "aa-standard")}
    best = max(counts, key=lambda k: (counts[k], k == "aa"))
    return best if counts[best] else "pgd20"


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


def plot_arms(runs: list[dict], path: Path, robust: str = "aa", groups: dict[str, list[dict]] | None = None,
              title: str = "every seed a point, arm means marked ✕") -> None:
    """Natural against robust accuracy: every run a point, each arm's mean a large marker; the arms are
    the runs grouped by their settings, or `groups` (label -> runs)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    label = dict(METRICS)[robust]
    for i, (arm, members) in enumerate((groups or arms(runs)).items()):
        pts = [(r[robust], r["natural"]) for r in members if r.get(robust) is not None and r.get("natural") is not None]
        if not pts:
            continue
        color = f"C{i}"
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=color, alpha=0.6)
        mx, my = statistics.mean(p[0] for p in pts), statistics.mean(p[1] for p in pts)
        ax.scatter([mx], [my], s=140, marker="X", color=color, edgecolor="black",
                   label=_legend_text(f"{arm} (n={len(pts)})"))
    ax.set_xlabel(f"{label} accuracy (%)")
    ax.set_ylabel("natural accuracy (%)")
    ax.set_title(title, fontsize=9)
    if ax.collections:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _legend_text(text: str, width: int = 48) -> str:
    """A long arm label on several lines, so that a legend beside the plot stays readable."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


def plot_arm_curves(runs: list[dict], path: Path) -> None:
    """Per arm, the mean over its runs of the training loss and of the periodic natural and PGD-20
    accuracy (--eval-every), against the epoch."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for i, (arm, members) in enumerate(arms(runs).items()):
        for ax, key in zip(axes, ("loss", "natural", "pgd20")):
            by_epoch: dict[int, list[float]] = {}
            for r in members:
                for h in r.get("history", []):
                    if h.get(key) is not None:
                        by_epoch.setdefault(h["epoch"], []).append(h[key])
            if by_epoch:
                epochs = sorted(by_epoch)
                ax.plot(epochs, [statistics.mean(by_epoch[e]) for e in epochs], marker=".", color=f"C{i}",
                        label=_legend_text(f"{arm} (n={len(members)})"))
    titles = ("training loss", "natural accuracy (%), periodic subset", "PGD-20 accuracy (%), periodic subset")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
    if axes[0].lines:
        axes[-1].legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1),
                        borderaxespad=0)
    warm = runs[0]["args"].get("warm_up", 0) if runs else 0
    for ax in axes:
        if warm:
            ax.axvline(warm + 0.5, color="grey", linestyle="--", linewidth=1)
    fig.suptitle("mean over seeds per arm; dashed line: end of warm-up", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
