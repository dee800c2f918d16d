"""The report's tables (markdown): each arm's means and its difference from its baseline, the cost, every
seed, the paired differences with their bounds, cam-info, Figure 1."""
from __future__ import annotations

import statistics

from cam.rules import QUADRANTS
from report.groups import (METRICS, arm_pairs, baseline_candidates, baseline_of, block_f_test, figure1_quadrant,
                           group_label, grouped, matched, paired, seed_order, start_of, t_interval)


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
    seeds = sorted({r["args"].get("seed") for m in groups.values() for r in m}, key=seed_order)
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


def figure1_table(runs: list[dict]) -> list[str]:
    """Figure 1 at this scale: per quadrant and seed, natural and PGD-20; ul − br paired over seeds;
    the spread (max − min over the four quadrants) per seed."""
    fig = [r for r in runs if figure1_quadrant(r)]
    if not fig:
        return []
    by = {(figure1_quadrant(r), r["args"].get("seed")): r for r in fig}
    seeds = sorted({s for _, s in by}, key=seed_order)
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
                     + (f" (mean {statistics.mean(spread):.2f})" if spread else "")
                     + (_quadrant_f(by, full, k) if len(full) >= 2 else ""))
    return lines


def _quadrant_f(by: dict, seeds: list, key: str) -> str:
    """The quadrant's effect over the seeds that ran all four, the seeds as blocks (randomised-block ANOVA)."""
    f, df1, df2, p = block_f_test([[by[q, s][key] for s in seeds] for q in QUADRANTS])
    return f"; quadrant effect, seeds as blocks: F({df1}, {df2}) = {f:.3g}, p = {p:.2g}"
