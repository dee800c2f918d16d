"""Report over results JSON files: a markdown table (each PART variant minus its baseline), training
curves per run, and the accuracy-robustness trade-off plot.

    python -m utils.evaluation.report results/*.json -o results/
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
from pathlib import Path

from cam.rules import CAM_FREE_RULES, QUADRANTS
from part import BASE_OF, METHODS, PartSettings
from utils.argtypes import OneLineParser
from utils.cli.settings import EARLIER_DEFAULTS, report_ignores, reweighting_only
from utils.infra.files import PROGRESS_SUFFIX

METRICS = (("natural", "natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AA"), ("aa-standard", "AA (standard)"))
# Runs are averaged together, or paired with a baseline, only when all their settings agree: every
# recorded argument except those whose Role (utils/cli/settings.py) is NONE, the script and the seed.
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
    """The run's settings (NOT_SETTINGS and `drop` left out) as a hashable, comparable key; a CPU run's
    thread count is one of them (CPU arithmetic differs slightly with it; None where not recorded)."""
    args = {**EARLIER_DEFAULTS, **run["args"]}      # results made before a setting existed
    if run.get("device", "cpu") == "cpu":
        args["cpu_threads"] = (run.get("machine") or {}).get("threads")
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
    lines += by_seed(runs)
    summary = seed_summary(runs)
    if summary:
        lines += ["", "Mean ± standard deviation over seeds (runs whose settings agree, seed aside):", ""]
        lines += ["| method | runs | " + " | ".join(m for _, m in METRICS) + " | training attack's start after the warm-up |",
                  "|" + "---|" * (3 + len(METRICS))]
        lines += summary
    pair_rows = paired_differences(runs)
    if pair_rows:
        lines += ["", "Paired differences, seed by seed (arms whose settings agree except the reweighting's own): "
                  "mean [95 % t-interval] over the common seeds; * marks an interval that excludes 0:", ""]
        lines += ["| difference | seeds | " + " | ".join(f"Δ {m}" for _, m in METRICS) + " |",
                  "|" + "---|" * (2 + len(METRICS))]
        lines += pair_rows
    lines += cam_info_table(runs) + figure1_table(runs) + cost_lines(runs)
    return "\n".join(lines) + "\n"


def cost_lines(runs: list[dict]) -> list[str]:
    """What the runs cost and where they ran: each run's training + evaluation seconds (its JSON's
    `seconds`), and the machines (CPU model or device, torch threads) with their run counts."""
    walls = [sum(r["seconds"].values()) for r in runs if r.get("seconds")]
    if not walls:
        return []
    machines: dict[str, int] = {}
    for r in runs:
        m = r.get("machine")
        threads = m and m.get("threads")
        where = (f"{m.get('cpu') or r.get('device', '?')}, {threads} torch thread{'s' if threads != 1 else ''}" if m
                 else f"{r.get('device', '?')} (CPU model and threads not recorded)")
        machines[where] = machines.get(where, 0) + 1
    return ["", f"Cost: {len(walls)} runs, each {min(walls) / 60:.1f}–{max(walls) / 60:.1f} min of training and "
            f"evaluation (median {statistics.median(walls) / 60:.1f}), {sum(walls) / 3600:.1f} h summed over the runs "
            "(runs that ran side by side overlap). Machines: "
            + "; ".join(f"{k} ({n} runs)" for k, n in machines.items()) + "."]


def by_seed(runs: list[dict]) -> list[str]:
    """The arms with several seeds, seed by seed: each cell the run's accuracies, in METRICS order."""
    groups = {k: m for k, m in grouped(runs).items() if len({r["args"].get("seed") for r in m}) >= 2}
    if not groups:
        return []
    seeds = sorted({r["args"].get("seed") for m in groups.values() for r in m})
    shown = [(k, name) for k, name in METRICS if any(r.get(k) is not None for m in groups.values() for r in m)]
    lines = ["", "Seed by seed (" + " / ".join(name for _, name in shown) + ", %):", "",
             "| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|" + "---|" * (len(seeds) + 1)]
    for key, members in groups.items():
        runs_of = {r["args"].get("seed"): r for r in members}
        cells = [" / ".join(_fmt(runs_of[s].get(k)) for k, _ in shown) if s in runs_of else "" for s in seeds]
        lines.append(f"| {group_label(key, grouped(runs))} | " + " | ".join(cells) + " |")
    return lines


def seed_summary(runs: list[dict]) -> list[str]:
    groups = grouped(runs)
    groups = {k: m for k, m in groups.items() if len({r["args"].get("seed") for r in m}) >= 2}
    rows = []
    for key, members in groups.items():
        cells = []
        for k, _ in METRICS:
            vals = [m[k] for m in members if m.get(k) is not None]
            cells.append("–" if len(vals) < 2 else f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"
                         + _fewer(len(vals), len(members), "runs"))
        rows.append(f"| {group_label(key, groups)} | {len(members)} | " + " | ".join(cells) + f" | {start_of(members[0])} |")
    return rows


def start_of(run: dict) -> str:
    """The run's training attack's random start after the warm-up, in words (part.step); "–"
    where its recorded arguments do not say."""
    from part.step import BASE_METHODS, start_in_words
    try:
        args = argparse.Namespace(**{**EARLIER_DEFAULTS, **run["args"]})
        return start_in_words(PartSettings.from_args(args), BASE_METHODS[METHODS[args.method].base_key])
    except (AttributeError, KeyError, TypeError):
        return "–"


def arm_kind(run: dict) -> str:
    """baseline (--no-reweight), cam (a CAM decides the budgets) or fixed (a CAM-free rule)."""
    a = run["args"]
    return "baseline" if a.get("no_reweight") else "fixed" if a.get("mask_rule") in CAM_FREE_RULES else "cam"


def _compared(a: dict, b: dict) -> bool:
    """Whether arm a (a run of it) is compared as a − b: every arm with the baseline, every CAM arm
    with every CAM-free arm, and every other CAM rule with the official one."""
    ka, kb = arm_kind(a), arm_kind(b)
    return (kb == "baseline" and ka != "baseline") or (ka == "cam" and kb == "fixed") or \
        (ka == kb == "cam" and b["args"].get("mask_rule") == "official" and a["args"].get("mask_rule") != "official")


def arm_pairs(runs: list[dict]) -> list[tuple[list[dict], list[dict], str]]:
    """(arm A, arm B, label) to compare seed by seed: within runs of one base method whose settings
    agree except the seed and the reweighting's own (PART_ONLY), every arm minus the baseline, every
    CAM arm minus every CAM-free arm (PART minus random placement, minus uniform budgets), and every
    other CAM rule minus the official one. An arm: runs of one group_key."""
    groups = grouped(runs)
    families: dict[tuple, list[tuple]] = {}
    for key, members in groups.items():     # a family: one base method (PART-T with TRADES, never MART)
        family = (base_method(members[0]), settings(members[0], PART_ONLY | {"seed"}))
        families.setdefault(family, []).append(key)
    pairs = []
    for keys in families.values():
        label = {k: group_label(k, {q: groups[q] for q in keys}) for k in keys}
        for a in keys:
            for b in keys:
                if a != b and _compared(groups[a][0], groups[b][0]):
                    pairs.append((groups[a], groups[b], f"{label[a]} − {label[b]}"))
    return pairs


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of paired differences (at least 2)."""
    from scipy import stats
    m = statistics.mean(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return m, m - half, m + half


def matched(a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    """The runs of arms a and b paired by seed."""
    by_seed = {r["args"].get("seed"): r for r in b}
    return [(r, by_seed[r["args"].get("seed")]) for r in a if r["args"].get("seed") in by_seed]


def paired(pairs: list[tuple[dict, dict]], key: str) -> list[float]:
    """x[key] − y[key] over the pairs where both have it."""
    return [x[key] - y[key] for x, y in pairs if x.get(key) is not None and y.get(key) is not None]


def _fewer(n: int, of: int, what: str) -> str:
    """' (n what)' where a measure has fewer values than its row counts (e.g. an AutoAttack some seeds
    did not run), so that no cell reads as over more seeds than it has."""
    return f" ({n} {what})" if n != of else ""


def _interval(res: tuple[float, float, float] | None) -> str:
    if res is None:
        return "–"
    m, lo, hi = res
    if hi - lo < 1e-6:  # every seed's difference the same: a t-interval has no width to give, and no star
        return f"{m:+.2f} [the same at every seed]"
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" + ("" if lo <= 0 <= hi else " *")


def paired_differences(runs: list[dict]) -> list[str]:
    rows, bounds = [], []
    for a, b, label in arm_pairs(runs):
        pairs = matched(a, b)
        if len(pairs) < 2:
            continue
        diffs = {k: paired(pairs, k) for k, _ in METRICS}
        res = {k: t_interval(d) if len(d) >= 2 else None for k, d in diffs.items()}
        few = {k: _fewer(len(d), len(pairs), "seeds") for k, d in diffs.items()}
        rows.append(f"| {label} | {len(pairs)} | " + " | ".join(_interval(res[k]) + (few[k] if res[k] else "")
                                                           for k, _ in METRICS) + " |")
        known = [(m, res[k], few[k]) for k, m in METRICS if res[k] is not None]
        if known:
            bounds.append(f"- {label}: at most " + ", ".join(f"{r[2]:+.2f} {m}{f}" for m, r, f in known)
                          + "; at least " + ", ".join(f"{r[1]:+.2f} {m}{f}" for m, r, f in known))
    if bounds:
        rows += ["", "The same as bounds at 95 % (the intervals' ends, in points):", "", *bounds]
    return rows


CAM_INFO = (("top", "top"), ("random", "random"), ("bottom", "bottom"), ("official", "official rule"),
            ("official-random", "official share at random"))


def cam_info_table(runs: list[dict]) -> list[str]:
    """The cam-info evaluation per arm: mean ± std of each set's robust accuracy over seeds, and the
    within-run differences random − top and official-random − official as mean [95 % t-interval]."""
    arms = grouped(runs)
    groups = {k: [r for r in m if isinstance(r.get("cam-info"), dict)] for k, m in arms.items()}
    groups = {k: m for k, m in groups.items() if m}
    if not groups:
        return []
    lines = ["", "CAM information (--eval cam-info): PGD-20 robust accuracy (%) with ε on a share of each image's "
             "pixels and 0 elsewhere — the model's own CAM's top share, a random share, the CAM's bottom share — "
             "and the official rule's ε/ε_low map against the same share placed at random; differences within each "
             "run, mean [95 % t-interval] over seeds (positive: the CAM's pixels matter more than random ones):", "",
             "| arm | runs | share | " + " | ".join(m for _, m in CAM_INFO) + " | random − top | official at random − "
             "official |", "|" + "---|" * (5 + len(CAM_INFO))]
    for key, members in groups.items():
        info = [r["cam-info"] for r in members]
        cells = [_mean_std([i[k] for i in info]) for k, _ in CAM_INFO]
        diffs = [_interval(t_interval(v)) if len(v) >= 2 else _fmt(v[0]) for v in
                 ([i["random - top"] for i in info], [i["official-random - official"] for i in info])]
        lines.append(f"| {group_label(key, arms)} | {len(members)} | {info[0].get('share')} | "
                     + " | ".join(cells + diffs) + " |")
    return lines


def _mean_std(vals: list[float]) -> str:
    if len(vals) < 2:
        return _fmt(vals[0]) if vals else "–"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


# The paper's Figure 1 (ResNet-18, CIFAR-10): natural / PGD-20 accuracy with the 6/255 quadrant there.
PAPER_FIGURE1 = {"br": (76.77, 46.75), "ul": (78.00, 47.69)}


def figure1_quadrant(run: dict) -> str | None:
    """The quadrant a Figure 1 run gives the lower budget (the others all share a higher one), else None."""
    a = run["args"]
    eps = a.get("region_eps") or {}
    if a.get("mask_rule") != "region" or a.get("no_reweight") or len(eps) != 4:
        return None
    low = min(eps, key=eps.get)
    others = {v for q, v in eps.items() if q != low}
    return low if len(others) == 1 and eps[low] < others.pop() else None


def figure1_table(runs: list[dict]) -> list[str]:
    """Figure 1 at this scale: per quadrant and seed, natural and PGD-20; ul − br paired over seeds;
    the spread (max − min over the four quadrants) per seed."""
    fig = [r for r in runs if figure1_quadrant(r)]
    if not fig:
        return []
    by = {(figure1_quadrant(r), r["args"].get("seed")): r for r in fig}
    seeds = sorted({s for _, s in by})
    quads = [q for q in QUADRANTS if any((q, s) in by for s in seeds)]
    lines = ["", "Figure 1 of the paper at this scale: one quadrant at the lower budget, the others at the higher "
             "(natural / PGD-20, %; paper, ResNet-18: br 76.77 / 46.75, ul 78.00 / 47.69):", "",
             "| low quadrant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|" + "---|" * (len(seeds) + 2)]
    for q in quads:
        cells = [f"{by[q, s]['natural']:.2f} / {by[q, s]['pgd20']:.2f}" if (q, s) in by else "–" for s in seeds]
        nat = [by[q, s]["natural"] for s in seeds if (q, s) in by]
        rob = [by[q, s]["pgd20"] for s in seeds if (q, s) in by]
        lines.append(f"| {q} | " + " | ".join(cells) + f" | {_mean_std(nat)} / {_mean_std(rob)} |")
    full = [s for s in seeds if all((q, s) in by for q in QUADRANTS)]
    for k, m in (("natural", "natural"), ("pgd20", "PGD-20")):
        both = [s for s in seeds if ("ul", s) in by and ("br", s) in by]
        d = [by["ul", s][k] - by["br", s][k] for s in both]
        spread = [max(by[q, s][k] for q in QUADRANTS) - min(by[q, s][k] for q in QUADRANTS) for s in full]
        lines.append(f"- {m}: ul − br {_interval(t_interval(d)) if len(d) >= 2 else '–'} over {len(d)} seeds "
                     f"(paper {PAPER_FIGURE1['ul'][k != 'natural'] - PAPER_FIGURE1['br'][k != 'natural']:+.2f}); "
                     f"spread across the four quadrants per seed {', '.join(f'{v:.2f}' for v in spread) or '–'}"
                     + (f" (mean {statistics.mean(spread):.2f})" if spread else ""))
    return lines


def group_label(key: tuple, groups: dict[tuple, list[dict]]) -> str:
    """The method, plus the settings in which this group differs from the other summarised groups of
    that method (and that it sets)."""
    method, mine = key
    others = [dict(k[1]) for k in groups if k[0] == method and k != key]
    mine = dict(mine)
    differ = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
    # A setting this group leaves unset (None: a rule's flag under another rule) names nothing.
    return method + "".join(f", {k}={_value_text(k, json.loads(mine[k]))}" for k in differ
                            if json.loads(mine[k]) is not None)


# Settings that are budgets: shown in 255ths, as the command line takes them.
BUDGET_SETTINGS = frozenset({"epsilon", "low_epsilon", "step_size", "eval_epsilon", "region_eps"})


def _value_text(key: str, v: object) -> str:
    """A setting as a reader types it: a budget in 255ths (7.2176/255), a quadrant map as ul=6/255,..."""
    if isinstance(v, dict):
        return ",".join(f"{q}={_value_text(key, v[q])}" for q in sorted(v, key=lambda q: (
            QUADRANTS.index(q) if q in QUADRANTS else len(QUADRANTS), q)))
    if key in BUDGET_SETTINGS and isinstance(v, float):
        return f"{round(v * 255, 4):g}/255"
    return str(v)


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
        ax.scatter([mx], [my], s=140, marker="X", color=color, edgecolor="black",
                   label=_legend_text(f"{arm} (n={len(pts)})"))
    ax.set_xlabel(f"{label} accuracy (%)")
    ax.set_ylabel("natural accuracy (%)")
    ax.set_title("every seed a point, arm means marked ✕", fontsize=9)
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
        if any(len(m) >= 2 for m in _arms(members).values()):      # seeds: the arm pictures
            suffix = f"_{base}" if len(families) > 1 else ""
            written += [out / f"arms_tradeoff{suffix}.png", out / f"arms_curves{suffix}.png"]
            plot_arms(members, written[-2], robust_axis(members))
            plot_arm_curves(members, written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m utils.evaluation.report", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="results JSON files")
    p.add_argument("-o", "--out", default="results", help="output folder")
    args = p.parse_args(argv)
    try:
        for path in write_report(args.results, Path(args.out)):
            print(path)
    except ValueError as exc:
        print(f"python -m utils.evaluation.report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
