"""Round 3 of the CPU-scale study: the positive control on CIFAR10-canvas, the CIFAR-10 input-
gradient arm paired with round 2, the ladder of the CAM's information, and round 2's intervals with
their multiplicity and power. Runs are read by their names in experiments/runs.py (`<arm>_seed<N>.json`).

    python -m report.round3 -o results/cpu-study/round3/table.md

Every comparison is paired by seed (the arms of a seed share the warm-up, the data order and the attack
noise); each difference is given as a mean with its 95 % t-interval, the two-sided paired-t p with its
Holm adjustment over the table's family (every interval of the table), and the true difference the
seeds would detect with 80 % power (a two-sided paired t-test at 5 %, from the observed spread).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from common.argtypes import OneLineParser
from report.groups import alike, detectable_effect, holm, t_interval, t_p_value

ROUND3, ROUND2 = Path("results/cpu-study/round3"), Path("results/cpu-study/round2")
METRICS = (("natural", "natural"), ("pgd20", "PGD-20"), ("aa-standard", "AA (standard)"))
CANVAS_ARMS = {"at": "AT", "uniform": "uniform 6.25/255", "box": "box", "inverse": "inverse box",
               "cam": "CAM (top share)", "gradient": "input gradient (top share)", "random": "random share",
               "uniform7": "uniform 7.5625/255", "box7": "box, 8/7", "cam7": "CAM, 8/7"}
# The questions: (a, b, what a − b asks).
QUESTIONS = (("box", "inverse", "can this study see placement at all?"),
             ("box", "uniform", "does the right map beat the mean budget?"),
             ("cam", "uniform", "does PART's map beat the mean budget?"),
             ("cam", "box", "does PART's map get as far as the right one?"),
             ("gradient", "cam", "does the input gradient place better than the CAM?"),
             ("random", "uniform", "does a random placement differ from the mean budget?"),
             ("box7", "uniform7", "the right map at PART's own contrast"),
             ("cam7", "uniform7", "PART's map at PART's own contrast"),
             ("cam7", "box7", "PART's map against the right one, PART's contrast"))
INFO_MAPS = ("gradcam", "gradient", "box")
ROUND2_ARMS = {"at": "AT", "part": "PART (official)", "part_paper": "PART (paper rule)", "random": "random",
               "uniform_clean": "uniform"}
ROUND2_PAIRS = (("part", "at"), ("part", "uniform_clean"), ("part", "random"), ("part_paper", "part"),
                ("part_paper", "uniform_clean"), ("part_paper", "random"), ("part_paper", "at"), ("random", "at"),
                ("uniform_clean", "at"))


# The log's AutoAttack (standard) lines: natural accuracy on the AutoAttack images themselves, which the
# results JSON does not keep (its `natural` is on all test images).
AA_LINE = re.compile(r"AA-standard=+\nTest: Accuracy: (\d+)/(\d+)")


def load(folder: Path) -> dict[str, dict[int, dict]]:
    """arm -> seed -> results, from folder/<arm>_seed<N>.json (progress files and others passed over); with
    `natural_aa`, the natural accuracy on the AutoAttack images, from <arm>_seed<N>.log where it has one."""
    out: dict[str, dict[int, dict]] = {}
    for p in sorted(folder.glob("*_seed*.json")):
        m = re.fullmatch(r"(.+)_seed(\d+)", p.stem)
        if m:
            run = out.setdefault(m[1], {})[int(m[2])] = json.loads(p.read_text())
            log = p.with_suffix(".log")
            found = AA_LINE.findall(log.read_text()) if log.is_file() else []
            if found:
                right, images = map(int, found[-1])
                run["natural_aa"] = 100.0 * right / images
    return out


def diffs(a: dict[int, dict], b: dict[int, dict], key) -> list[float]:
    """a − b of `key` (a results key, or a function of a run) over the seeds both have."""
    get = key if callable(key) else (lambda r: r.get(key))
    return [get(a[s]) - get(b[s]) for s in sorted(set(a) & set(b)) if get(a[s]) is not None and get(b[s]) is not None]


def interval_cells(rows: list[tuple[str, list[float]]]) -> list[list[str]]:
    """For each (label, differences): mean [95 % CI], p, Holm p (over all the rows), detectable effect. A row
    whose seeds all differ by the same amount (SD 0: a t-interval has no width to give, and its p would be 0)
    shows that amount alone, outside the Holm family; a row of fewer than 2 seeds is left out."""
    tested = [i for i, (_, d) in enumerate(rows) if len(d) >= 2 and not alike(d)]
    p = {i: t_p_value(rows[i][1]) for i in tested}
    adjusted = dict(zip(tested, holm(list(p.values())) if p else []))
    out = []
    for i, (label, d) in enumerate(rows):
        if len(d) < 2:
            continue
        if i not in p:
            out.append([label, str(len(d)), f"{d[0]:+.2f} at every seed (no interval)", "–", "–", "–"])
            continue
        m, lo, hi = _interval(d)
        star = "" if lo <= 0 <= hi else " *"
        out.append([label, str(len(d)), f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]{star}", f"{p[i]:.3f}",
                    f"{adjusted[i]:.3f}", f"{detectable_effect(statistics.stdev(d), len(d)):.2f}"])
    return out


def num(v, spec: str = ".2f") -> str:
    """A number as `spec`, or – where there is none."""
    return "–" if v is None else format(v, spec)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def mapinfo(run: dict, name: str, key: str):
    info = run.get("map-info") or {}
    if key == "bottom - top":
        bottom, top = mapinfo(run, name, "bottom"), mapinfo(run, name, "top")
        return None if bottom is None or top is None else bottom - top
    if key == "random":
        return info.get("random")
    return ((info.get("maps") or {}).get(name) or {}).get(key)


def pilot(runs: dict) -> list[str]:
    r = runs.get("at", {}).get(1)
    if r is None:
        return ["", "Pilot (AT seed 1 on the canvas): not run yet."]
    box_gap = mapinfo(r, "box", "random - top")
    ok = (r.get("natural") or 0) >= 28 and (r.get("pgd20") or 0) >= 18 and box_gap is not None and box_gap >= 1.5
    return ["", "Pilot: AT seed 1 on CIFAR10-canvas (the bars: natural ≥ 28 %, PGD-20 ≥ 18 %, random − box ≥ 1.5 "
            "points of PGD-20 with ε on 56.25 % of the pixels):", "",
            *table(["natural", "PGD-20", "AA (standard)", "box top", "random", "box bottom (outside + 128 box px)",
                    "random − box", "passes"],
                   [[num(r.get("natural")), num(r.get("pgd20")), num(r.get("aa-standard")),
                     num(mapinfo(r, "box", "top")), num(mapinfo(r, "box", "random")),
                     num(mapinfo(r, "box", "bottom")), num(box_gap, "+.2f"), "yes" if ok else "NO"]])]


def seed_table(runs: dict, arms: dict[str, str]) -> list[str]:
    seeds = sorted({s for a in arms for s in runs.get(a, {})})
    rows = [[label] + [" / ".join(num(runs[a][s].get(k)) for k, _ in METRICS) if s in runs.get(a, {}) else ""
                       for s in seeds] for a, label in arms.items() if a in runs]
    return ["", "Seed by seed (natural / PGD-20 / AA (standard), %):", "",
            *table(["arm"] + [f"seed {s}" for s in seeds], rows)]


def arm_means(runs: dict, arms: dict[str, str]) -> list[str]:
    """Each arm's mean and standard deviation over its seeds: the study's headline table."""
    def cell(a: str, key: str) -> str:
        v = [r[key] for r in runs[a].values() if r.get(key) is not None]
        return "–" if not v else f"{statistics.mean(v):.2f}" + (f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else "")
    rows = [[label, str(len(runs[a]))] + [cell(a, k) for k, _ in METRICS] for a, label in arms.items() if runs.get(a)]
    return ["", "Arm means over seeds (%, ± the standard deviation over seeds):", "",
            *table(["arm", "seeds"] + [m for _, m in METRICS], rows)]


def shared_warm_up(runs: dict) -> list[str]:
    """Whether every canvas arm of a seed trained the same warm-up as that seed's AT run (its epochs 1-3
    logged the same losses and evaluations): the pairing's premise."""
    at = runs.get("at", {})
    same = [(a, s) for a in runs if a != "at" for s in runs[a] if s in at and warm_up_identical(runs[a][s], at[s])]
    differ = [f"{a}_seed{s}" for a in runs if a != "at" for s in runs[a] if s in at and (a, s) not in same]
    return ["", f"Warm-up (epochs 1–3, losses and evaluations) identical to the AT run of the same seed in {len(same)} "
            f"of {len(same) + len(differ)} canvas runs" + (f"; different: {', '.join(differ)}." if differ else ".")]


def questions(runs: dict) -> list[str]:
    rows = [(f"{CANVAS_ARMS[a]} − {CANVAS_ARMS[b]}: {name}", diffs(runs[a], runs[b], key), what)
            for a, b, what in QUESTIONS if a in runs and b in runs for key, name in METRICS]
    cells = interval_cells([(f"{label} ({what})", d) for label, d, what in rows])
    return ["", f"The questions, paired by seed (family: the {len(cells)} intervals below; * : the interval excludes "
            "0; p: two-sided paired t; Holm: p adjusted over the family; detectable: the true difference these seeds "
            "detect with 80 % power):", "",
            *table(["difference", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"], cells)]


# The arms that place nothing: AT (8/255 everywhere) and the two uniform mean budgets. Per seed, a
# least-squares line through their (natural, robust) points is the budget's own trade-off.
FRONTIER_ARMS = ("at", "uniform", "uniform7")
PLACED_ARMS = ("box", "inverse", "cam", "gradient", "random", "box7", "cam7")


def frontier_residual(seed_runs: dict[str, dict], arm: str, key: str,
                      anchors: tuple[str, ...] = FRONTIER_ARMS, natural: str = "natural",
                      degree: int = 1) -> float | None:
    """How far `arm`'s `key` accuracy lies above the line through the `anchors`' (`natural`, `key`) points
    of the same seed, at the arm's natural accuracy (points; None without the runs). `degree` 2: the
    parabola through three anchors instead of the least-squares line."""
    def point(r):
        return None if r is None or r.get(natural) is None or r.get(key) is None else (r[natural], r[key])
    points = [p for a in anchors if (p := point(seed_runs.get(a)))]
    run = point(seed_runs.get(arm))
    if len(points) < degree + 1 or run is None or len({x for x, _ in points}) < degree + 1:
        return None
    if degree == 2:
        import numpy as np
        xs, ys = zip(*points)
        return run[1] - float(np.polyval(np.polyfit(xs, ys, 2), run[0]))
    xs, ys = zip(*points)
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return run[1] - (my + slope * (run[0] - mx))


def frontier(runs: dict) -> list[str]:
    """Each placed arm's robust accuracy against the budget's own trade-off at its natural accuracy."""
    seeds = sorted({s for a in runs for s in runs[a]})
    by_seed = {s: {a: runs[a][s] for a in runs if s in runs[a]} for s in seeds}
    rows = []
    for arm in PLACED_ARMS:
        for key, name in METRICS[1:]:
            d = [v for s in seeds if (v := frontier_residual(by_seed[s], arm, key)) is not None]
            rows.append((f"{CANVAS_ARMS[arm]}: {name}", d))
    cells = interval_cells(rows)
    if not cells:
        return []
    return ["", "Off the budget's own trade-off: each arm's robust accuracy minus the line through AT, uniform "
            "7.5625/255 and uniform 6.25/255 (the arms that place nothing; least squares, per seed) at the arm's "
            f"natural accuracy, points (family: the {len(cells)} intervals below; > 0: more robust than a mean "
            "budget of the same natural accuracy; the inverse box lies beyond uniform's natural accuracy, so its "
            "line is extrapolated):", "",
            *table(["arm: measure", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"], cells)]


# The line test's calibration and its anchors (experiments/runs.py, cpu-study-4): AT on 25 % more images, which
# must lie above the uniform budgets' line, and AT's budget with the uniform arms' start (the start-matched anchor).
LINE_ARMS = {"at_more": "AT on 12,500 images (calibration)", "at_double": "AT on 20,000 images (calibration)",
             "uniform8": "uniform 8/255, the uniform arms' start"}
CALIBRATION_ARMS = ("at_more", "at_double")       # known to lie above the line
# The line's variants: (label, anchors, degree, the natural accuracy the AA distance is read at).
LINE_VARIANTS = (("linear", FRONTIER_ARMS, 1, "natural"),
                 ("AA's own images", FRONTIER_ARMS, 1, "natural_aa"),
                 ("start-matched", ("uniform8", "uniform", "uniform7"), 1, "natural"),
                 ("uniform only", ("uniform", "uniform7"), 1, "natural"),
                 ("quadratic", FRONTIER_ARMS, 2, "natural"))


def line_checks(runs: dict) -> list[str]:
    """The distance from the line under each variant of the line (LINE_VARIANTS), for every placed arm and the
    calibration arm; then each linear distance's detectable effect, with the SD's uncertainty and at the
    family's strictest Holm level."""
    seeds = sorted({s for a in runs for s in runs[a]})
    by_seed = {s: {a: runs[a][s] for a in runs if s in runs[a]} for s in seeds}
    names = {**CANVAS_ARMS, **LINE_ARMS}
    rows, sds, calibration = [], [], []
    for arm in (*PLACED_ARMS, *CALIBRATION_ARMS):
        for key, name in METRICS[1:]:
            cells = []
            for label, anchors, degree, natural in LINE_VARIANTS:
                if label == "AA's own images" and key != "aa-standard":
                    cells.append("–")
                    continue
                d = [v for s in seeds if all(a in by_seed[s] for a in anchors)
                     and (v := frontier_residual(by_seed[s], arm, key, anchors, natural, degree)) is not None]
                cells.append(_mean_interval(d))
                if label == "linear" and len(d) >= 2:
                    sds.append((f"{names[arm]}: {name}", d))
                    if arm in CALIBRATION_ARMS:
                        calibration.append(sds[-1])
            if any(c != "–" for c in cells):
                rows.append([f"{names[arm]}: {name}", *cells])
    if not rows:
        return []
    m, q = len(sds) - len(calibration), len(QUESTIONS) * len(METRICS)   # the family: the placed arms' distances
    power = [[label, str(len(d)), f"{statistics.stdev(d):.2f}", f"{detectable_effect(statistics.stdev(d), len(d)):.2f}",
              f"{detectable_effect(_sd_upper(d), len(d)):.2f}",
              *(f"{detectable_effect(statistics.stdev(d), len(d), alpha=0.05 / k):.2f}" for k in (m, q))]
             for label, d in sds]
    return ["", "The line test, its calibration and its choices: each arm's distance from the uniform budgets' line "
            "(points, mean [95 % CI] over seeds; > 0: above the line). linear: the table above; AA's own images: "
            "natural accuracy read on the 500 AutoAttack images (from each run's log) for the arm and the anchors; "
            "start-matched: AT replaced by AT's budget with the uniform arms' unclipped start; uniform only: the "
            "two uniform budgets; quadratic: the parabola through AT and the two uniform budgets:", "",
            *table(["arm: measure", *(v[0] for v in LINE_VARIANTS)], rows),
            "", f"What the linear distances can detect with 80 % power (two-sided paired t): at 5 % from the observed "
            f"SD; at 5 % from the SD's upper 95 % confidence limit; at the strictest Holm level of this family "
            f"(5 % / {m}) and of the questions' family above (5 % / {q}):", "",
            *table(["arm: measure", "seeds", "SD", "detectable", "with the SD's upper limit", f"at 5 % / {m}",
                    f"at 5 % / {q}"], power), *against_at(runs), *sensitivity(calibration)]


def against_at(runs: dict) -> list[str]:
    """Each calibration arm and the start-matched anchor minus AT, paired by seed: more images must raise natural
    and robust accuracy together; the anchor differs from AT only in its attack's start."""
    cells = interval_cells([(f"{LINE_ARMS[arm]} − AT: {name}", diffs(runs[arm], runs["at"], key))
                            for arm in LINE_ARMS if arm in runs and "at" in runs for key, name in METRICS])
    if not cells:
        return []
    return ["", "Against AT, paired by seed (Holm over these rows; the start-matched anchor is AT's budget with the "
            "uniform arms' start, AT's start is clipped to [0, 1]):", "",
            *table(["difference", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"], cells)]


def sensitivity(calibration: list[tuple[str, list[float]]]) -> list[str]:
    """The study's sensitivity as the calibration arms measure it: each one's linear distance above the line,
    and whether its 95 % interval excludes 0 (the design saw it)."""
    if not calibration:
        return ["", "Sensitivity: the calibration arms (AT on more images) have not run at two seeds yet."]
    words = []
    for label, d in calibration:
        m, lo, hi = _interval(d)
        words.append(f"{label} {m:+.2f} [{lo:+.2f}, {hi:+.2f}] over {len(d)} seeds, "
                     + ("seen (its interval excludes 0)" if lo > 0 else "not seen (its interval holds 0)"))
    return ["", "Sensitivity, from the arms known to lie above the line: " + "; ".join(words) + "."]


def _interval(d: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of d (the mean thrice where every value is the same)."""
    return (statistics.mean(d),) * 3 if alike(d) else t_interval(d)


def _mean_interval(d: list[float]) -> str:
    if len(d) < 2:
        return "–"
    m, lo, hi = _interval(d)
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _sd_upper(d: list[float]) -> float:
    """The upper limit of the SD's two-sided 95 % confidence interval (chi-square, n − 1 degrees of freedom)."""
    from scipy import stats
    n = len(d)
    return statistics.stdev(d) * ((n - 1) / stats.chi2.ppf(0.025, n - 1)) ** 0.5


def localisation(runs: dict) -> list[str]:
    rows, spans = [], {m: {} for m in INFO_MAPS}
    for a, label in CANVAS_ARMS.items():
        members = list(runs.get(a, {}).values())
        if not members:
            continue
        for m in INFO_MAPS:
            def mean(key):
                vals = [mapinfo(r, m, key) for r in members if mapinfo(r, m, key) is not None]
                if vals:
                    spans[m].setdefault(key, []).append(statistics.mean(vals))
                return f"{statistics.mean(vals):.2f}" if vals else "–"
            rows.append([label, m, str(len(members)), mean("pointing"), mean("iou"), mean("top"),
                         mean("random"), mean("bottom"), mean("random - top"), mean("bottom - top")])
    keys = ("pointing", "iou", "random - top", "bottom - top")
    ranges = [[m, *(f"{min(spans[m][k]):.2f}–{max(spans[m][k]):.2f}" if spans[m].get(k) else "–" for k in keys)]
              for m in INFO_MAPS if spans[m]]
    return ["", "Localisation and information of each map on each arm's final models (mean over seeds; PGD-20 with "
            "ε = 8/255 on 56.25 % of each image's pixels, 0 elsewhere; pointing: the map's maximum inside the box, %, "
            "chance 56.25; IoU of the map's top 56.25 % with the box, chance about 0.39):", "",
            *table(["arm", "map", "seeds", "pointing %", "IoU", "top", "random", "bottom", "random − top",
                    "bottom − top"], rows),
            "", "Each map's range over the arms' means:", "",
            *table(["map", "pointing %", "IoU", "random − top", "bottom − top"], ranges)]


def warm_up_identical(a: dict, b: dict, epochs: int = 3) -> bool:
    """Whether two runs' warm-up epochs logged the same losses (to the last digit) and evaluations."""
    keep = ("epoch", "phase", "loss", "lr", "natural", "pgd20")
    rows = [[{k: r.get(k) for k in keep} for r in run["history"][:epochs]] for run in (a, b)]
    return rows[0] == rows[1]


def gradient_arm(runs3: dict, runs2: dict) -> list[str]:
    g = runs3.get("cifar_gradient", {})
    if not g:
        return ["", "CIFAR-10 input-gradient arm: not run yet."]
    checks = [f"seed {s}: {'identical' if warm_up_identical(g[s], runs2['part_paper'][s]) else 'DIFFERENT'}"
              for s in sorted(g) if s in runs2.get("part_paper", {})] or ["no round 2 run of its seeds here"]
    rows = [(f"gradient − {ROUND2_ARMS[b]}: {name}", diffs(g, runs2[b], key))
            for b in ("part_paper", "uniform_clean", "random", "at") if b in runs2 for key, name in METRICS]
    info = [(f"{m}: random − top (own model)", [v for r in g.values() if (v := mapinfo(r, m, "random - top")) is not None])
            for m in ("gradcam", "gradient")]
    lines = ["", "CIFAR-10, round 2's setting: PART with the input-gradient map (the paper's rule at 21.76 %), paired "
             "with round 2's runs of the same seed. Warm-up (epochs 1–3: losses and evaluations) against round 2's: "
             + "; ".join(checks) + ".", "",
             *table(["difference", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"], interval_cells(rows))]
    beside = {"cifar_gradient": g} | {b: {s: r for s, r in runs2[b].items() if s in g} for b in ROUND2_ARMS if b in runs2}
    lines += seed_table(beside, {"cifar_gradient": "PART, input gradient (round 3)"}
                        | {b: f"{label} (round 2)" for b, label in ROUND2_ARMS.items()})
    # Round 2 has one uniform arm: per seed, the line through AT's and uniform's points is the budget's trade-off.
    by_seed = {s: {a: runs[s] for a, runs in beside.items() if s in runs} for s in sorted(g)}
    off = [(f"{label}: {name}", [v for s in by_seed if (v := frontier_residual(
                by_seed[s], a, key, anchors=("at", "uniform_clean"))) is not None])
           for a, label in (("cifar_gradient", "PART, input gradient"), ("part_paper", "PART (paper rule)"))
           for key, name in METRICS[1:]]
    if cells := interval_cells(off):
        lines += ["", "Off the budget's own trade-off on CIFAR-10: robust accuracy minus the line through round 2's AT "
                  "and uniform of the seed at the arm's natural accuracy, points (two points a seed, so the line is "
                  "noisier than the canvas's three-point fit; > 0: more robust than a mean budget of the same "
                  "natural accuracy):", "",
                  *table(["arm: measure", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"], cells)]
    lines += ["", "Information of the two maps on the gradient arm's models (random − top, points; mean [95 % CI]):",
              "", *table(["map", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"],
                         interval_cells(info))]
    return lines


# The gradient-masking check (studies/masking.py): <round3>/masking/<arm>_seed<N>.json, each arm's retrained
# CIFAR-10 models (experiments/runs.py, cpu-study-4) against stronger and transferred attacks.
MASKING_ARMS = {"cifar_gradient": "PART, input gradient", "part_paper": "PART (paper rule)", "at": "AT"}
MASKING_ATTACKS = (("pgd20", "PGD-20"), ("pgd100x5", "PGD-100 × 5"), ("apgd-ce", "APGD-CE"), ("apgd-t", "APGD-T"),
                   ("worst", "worst of the three"), ("transfer", "transfer from AT"))


def masking(folder: Path) -> list[str]:
    """Each arm's accuracy under every attack of the masking check, and the input-gradient arm's difference
    from the paper rule's under each: does its PGD-20 gain survive the stronger and the transferred attacks?
    Over the seeds every arm checked so far has (a seed still being checked is left out of every row)."""
    checked = load(folder / "masking")
    if not checked:
        return ["", "Gradient masking of the CIFAR-10 arms (`python -m studies.masking`): not run yet."]
    seeds = set.intersection(*(set(arm) for arm in checked.values()))
    runs = {a: {s: r for s, r in arm.items() if s in seeds} for a, arm in checked.items()}
    acc = lambda key: (lambda r: r["accuracy"][key])                     # noqa: E731
    means = [[label, str(len(runs.get(a, {})))] + [f"{statistics.mean(r['accuracy'][k] for r in runs[a].values()):.2f}"
                                                  if runs.get(a) else "–" for k, _ in MASKING_ATTACKS]
             for a, label in MASKING_ARMS.items()]
    rows = [(f"input gradient − paper rule: {name}", diffs(runs.get("cifar_gradient", {}), runs.get("part_paper", {}),
                                                          acc(k))) for k, name in MASKING_ATTACKS]
    # Signs of masking: a gap from PGD-20 to the stronger attacks wider than AT's on the same seed, and a
    # transferred attack that beats the model's own gradient (transfer − PGD-20 below 0).
    gap = lambda r: r["accuracy"]["pgd20"] - r["accuracy"]["worst"]     # noqa: E731
    gaps = [(f"{label}: PGD-20 − worst", [gap(r) for r in runs[a].values()])
            for a, label in MASKING_ARMS.items() if a in runs]
    gaps += [(f"{label} − AT: PGD-20 − worst", diffs(runs.get(a, {}), runs.get("at", {}), gap))
             for a, label in MASKING_ARMS.items() if a != "at"]
    gaps += [(f"{label}: transfer − PGD-20", [r["accuracy"]["transfer"] - r["accuracy"]["pgd20"] for r in runs[a].values()])
             for a, label in MASKING_ARMS.items() if a in runs and a != "at"]
    images = {r["images"] for arm in runs.values() for r in arm.values()}
    every = [r for arm in checked.values() for r in arm.values() if r.get("seconds")]
    spent = (f"The checks' cost: {durations([sum(r['seconds'].values()) for r in every], 'check')}, "
             f"{'/'.join(sorted({str(r.get('threads')) for r in every}))} thread(s) each.") if every else ""
    return ["", f"Gradient masking of the CIFAR-10 arms (`python -m studies.masking`, on each model's {'/'.join(map(str, sorted(images)))} "
            "AutoAttack images; accuracy %, mean over the seeds every arm has been checked on; worst: robust only if it survives PGD-100 × 5, APGD-CE and "
            "APGD-T; transfer: PGD-20 made on the AT model of the same seed):", "",
            *table(["arm", "seeds", *(name for _, name in MASKING_ATTACKS)], means),
            "", "Paired by seed (points; Holm over the rows; signs of gradient masking would be a gap from PGD-20 to "
            "the worst attack wider than AT's, or a transferred attack stronger than the model's own, transfer − "
            "PGD-20 below 0):", "",
            *table(["difference", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"],
                   interval_cells(rows + gaps)), *(["", spent] if spent else [])]


def masking_replication(runs3: dict, runs2: dict) -> list[str]:
    """The masking check's retrained models on the run's own test images: does the input-gradient arm's
    PGD-20 gain over the paper rule (rounds 2 and 3) replicate when both arms are trained again, and how far
    does a retrained model land from the round's own (the same commands on a machine that rounds
    differently)? Over the seeds both retrained arms have."""
    g, p = runs3.get("masking_cifar_gradient", {}), runs3.get("masking_part_paper", {})
    seeds = sorted(set(g) & set(p))
    if not seeds:
        return []
    keep = lambda runs: {s: r for s, r in runs.items() if s in seeds}     # noqa: E731
    g, p = keep(g), keep(p)
    g0, p0 = keep(runs3.get("cifar_gradient", {})), keep(runs2.get("part_paper", {}))
    rows = [(f"retrained: input gradient − paper rule: {name}", diffs(g, p, k)) for k, name in METRICS[:2]]
    rows += [(f"rounds 2 and 3, the same seeds: input gradient − paper rule: {name}", diffs(g0, p0, k))
             for k, name in METRICS[:2]]
    gain = lambda a, b: {s: {"pgd20": a[s]["pgd20"] - b[s]["pgd20"]} for s in set(a) & set(b)}  # noqa: E731
    rows += [("retrained − rounds 2 and 3: the PGD-20 gain (input gradient − paper rule)",
              diffs(gain(g, p), gain(g0, p0), "pgd20"))]
    rows += [(f"retrained − the round's own, {label}: PGD-20", diffs(new, old, "pgd20"))
             for label, new, old in (("input gradient", g, g0), ("paper rule", p, p0),
                                     ("AT", keep(runs3.get("masking_at", {})), keep(runs2.get("at", {}))))]
    return ["", "The same comparison on the retrained models' own test images (natural and PGD-20 on the run's "
            "2,000, from its results file), beside the rounds' models of the same seeds (points; Holm over the rows):",
            "", *table(["difference", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"],
                       interval_cells(rows))]


def ladder(runs3: dict, runs2: dict) -> list[str]:
    rows = []
    at2 = runs2.get("at", {})
    if at2:
        def mean(values, spec=".2f"):
            values = [v for v in values if v is not None]
            return num(statistics.mean(values) if values else None, spec)
        rows.append(["10,000 × 10 (round 2, AT)", str(len(at2)), *(mean(r.get(k) for r in at2.values()) for k, _ in METRICS),
                     mean(((r.get("cam-info") or {}).get("random - top") for r in at2.values()), "+.2f"), "–", "–"])
    for name, label in (("ladder_10k_10", "10,000 × 10 (seed 1 again)"), ("ladder_50k_10", "50,000 × 10"),
                        ("ladder_50k_30", "50,000 × 30")):
        r = runs3.get(name, {}).get(1)
        if r is None:
            rows.append([label, "0", "", "", "", "", "", ""])
            continue
        rows.append([label, "1", num(r.get("natural")), num(r.get("pgd20")), num(r.get("aa-standard")),
                     num((r.get("cam-info") or {}).get("random - top"), "+.2f"),
                     num(mapinfo(r, "gradcam", "random - top"), "+.2f"), num(mapinfo(r, "gradient", "random - top"), "+.2f")])
    return ["", "The ladder: the CAM's information against the model's strength (AT, CIFAR-10, smallcnn-bn; random − "
            "top in points of PGD-20 with ε on 21.76 % of the pixels: cam-info's GradCAM, and map-info's GradCAM and "
            "input gradient, ties at random):", "",
            *table(["training images × epochs", "seeds", "natural", "PGD-20", "AA (standard)",
                    "cam-info random − top", "map-info GradCAM", "map-info gradient"], rows)]


def round2_revisited(runs2: dict) -> list[str]:
    """Round 2's 36 intervals (9 differences x 4 measures) with p, Holm p over all 36 and the detectable
    effect; cam-info pooled over the five arms blocked by seed."""
    keys = (("natural", "natural"), ("pgd20", "PGD-20"), ("aa", "AA (torchattacks, 4 seeds)"),
            ("aa-standard", "AA (standard)"))
    rows = [(f"{ROUND2_ARMS[a]} − {ROUND2_ARMS[b]}: {name}", diffs(runs2[a], runs2[b], key))
            for a, b in ROUND2_PAIRS for key, name in keys if a in runs2 and b in runs2]
    lines = ["", f"Round 2 revisited: its {len(rows)} intervals as one family, Holm-adjusted, with the difference "
             "each detects at 80 % power:", "",
             *table(["difference", "seeds", "mean [95 % CI]", "p", "Holm p", "detectable (80 %)"], interval_cells(rows))]
    arms = [a for a in ROUND2_ARMS if a in runs2]
    seeds = sorted(set.intersection(*(set(runs2[a]) for a in arms))) if arms else []
    per_seed = [statistics.mean(runs2[a][s]["cam-info"]["random - top"] for a in arms)
                for s in seeds if all(runs2[a][s].get("cam-info") for a in arms)]
    if len(per_seed) >= 2:
        m, lo, hi = t_interval(per_seed)
        lines += ["", f"cam-info random − top pooled over round 2's five arms, blocked by seed (the mean of a seed's "
                  f"five arms, then a t-interval over its {len(per_seed)} seeds): {m:+.2f} [{lo:+.2f}, {hi:+.2f}]."]
    return lines


def road_of(run: dict, name: str, folder: Path) -> dict | None:
    """The run's ROAD scores per map: the --eval-only one in folder/road/<name>.json where there is one
    (the runs whose own ROAD came from code before its ranks broke ties), else its own `road`."""
    extra = folder / "road" / f"{name}.json"
    if extra.is_file():
        return json.loads(extra.read_text())["road"]["maps"]
    return (run.get("road") or {}).get("maps")


def road_agreement(runs3: dict, folder: Path) -> list[str]:
    """ROAD (the grad-cam package's, natural prediction) beside map-info's random − top (the attack's
    damage): per map their means, and how the two rank the maps within each run."""
    from scipy import stats
    points, agree, runs_with = [], 0, 0
    by_map: dict[str, list[tuple[float, float]]] = {}
    for arm, seeds in runs3.items():
        for seed, r in seeds.items():
            road = road_of(r, f"{arm}_seed{seed}", folder)
            if not road:
                continue
            pairs = [(road[m], mapinfo(r, m, "random - top")) for m in road if mapinfo(r, m, "random - top") is not None]
            points += pairs
            for m in road:
                if mapinfo(r, m, "random - top") is not None:
                    by_map.setdefault(m, []).append((road[m], mapinfo(r, m, "random - top")))
            if len(pairs) >= 2:
                runs_with += 1
                agree += stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic == 1.0
    if len(points) < 3:
        return ["", "ROAD beside map-info: not enough runs with both yet."]
    rho = stats.spearmanr([p[0] for p in points], [p[1] for p in points])
    rows = [[m, str(len(v)), f"{statistics.mean(p[0] for p in v):+.4f}", f"{statistics.mean(p[1] for p in v):+.2f}"]
            for m, v in by_map.items()]
    return ["", "ROAD (grad-cam's ROADCombined, percentiles 20–80, the label's softmax probability, on the 500 "
            "AutoAttack images) beside map-info's random − top (PGD-20, points):", "",
            *table(["map", "runs", "ROAD (mean)", "map-info random − top (mean)"], rows), "",
            f"Over the {len(points)} (run, map) pairs the two rank alike with Spearman ρ = {rho.statistic:+.2f} "
            f"(p = {rho.pvalue:.3f}); within a run they order its maps the same way in {agree} of {runs_with} runs."]


def pictures(runs3: dict, out: Path) -> list[Path]:
    """Each contrast's trade-off plot (natural against AA (standard), every seed a point, arm means marked)."""
    from report.plots import plot_arms
    written = []
    for name, arms, title in (("strong", ("at", "uniform", "box", "inverse", "cam", "gradient", "random"),
                               "CIFAR10-canvas, ε 8/255 and ε_low 4/255 (AT: 8/255 everywhere)"),
                              ("part", ("at", "uniform7", "box7", "cam7"),
                               "CIFAR10-canvas, ε 8/255 and ε_low 7/255 (AT: 8/255 everywhere)")):
        groups = {CANVAS_ARMS[a]: list(runs3[a].values()) for a in arms if runs3.get(a)}
        if groups:
            path = out / f"tradeoff_{name}.png"
            plot_arms([r for g in groups.values() for r in g], path, "aa-standard", groups, title)
            written.append(path)
    return written


def cost(runs: dict, what: str = "Cost") -> list[str]:
    """The runs' count, their run time (training and evaluation, summed from each run's `seconds`), machines and
    starting commits."""
    walls = [sum(r["seconds"].values()) for arm in runs.values() for r in arm.values() if r.get("seconds")]
    if not walls:
        return []
    machines = {f"{(r.get('machine') or {}).get('cpu')}, {(r.get('machine') or {}).get('threads')} thread(s)"
                for arm in runs.values() for r in arm.values()}
    commits = {((r.get("started") or {}).get("git_commit") or "?")[:7] for arm in runs.values() for r in arm.values()}
    return ["", f"{what}: {durations(walls, 'run')}; machines: {', '.join(sorted(machines))}; "
            f"started at commits {', '.join(sorted(commits))}."]


def durations(seconds: list[float], noun: str) -> str:
    """How many, and how long: each one's range and median in minutes and their sum in hours (a lone one as such)."""
    if len(seconds) == 1:
        return f"1 {noun}, {seconds[0] / 60:.1f} min"
    return (f"{len(seconds)} {noun}s, each {min(seconds) / 60:.1f}–{max(seconds) / 60:.1f} min (median "
            f"{statistics.median(seconds) / 60:.1f}), {sum(seconds) / 3600:.1f} h summed")


def report(round3: Path, round2: Path) -> str:
    runs3, runs2 = load(round3), load(round2)
    canvas = {a: runs3[a] for a in CANVAS_ARMS if a in runs3}
    done = sum(len(v) for v in runs3.values())
    lines = ["# Round 3 of the CPU-scale study: the positive control", "",
             f"{done} runs finished in {round3}. Generated by `python -m report.round3`."]
    lines += pilot(canvas) + arm_means(canvas, CANVAS_ARMS) + seed_table(canvas, CANVAS_ARMS)
    lines += shared_warm_up(canvas) + questions(canvas)
    lines += frontier(canvas)
    line_arms = {a: runs3[a] for a in LINE_ARMS if a in runs3}
    lines += line_checks({**canvas, **line_arms})
    lines += localisation(canvas)
    lines += gradient_arm(runs3, runs2) + masking(round3) + masking_replication(runs3, runs2) + ladder(runs3, runs2) + road_agreement(runs3, round3)
    lines += round2_revisited(runs2) + cost(runs3)
    own = {a: r for a, r in runs3.items() if a not in LINE_ARMS and not a.startswith("masking_")}
    lines += cost(own, "Of them, round 3's own runs (cpu-study-3)")
    lines += cost({"cifar_gradient": runs3.get("cifar_gradient", {})}, "Of those, the CIFAR-10 input-gradient arm")
    for name in ("ladder_50k_10", "ladder_50k_30"):
        lines += cost({name: runs3.get(name, {})}, f"Of those, {name}")
    lines += cost(line_arms, "Of them, the line test's calibration arms and anchor")
    lines += cost({a: r for a, r in runs3.items() if a.startswith("masking_")}, "Of them, the masking check's retrained models")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m report.round3", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--round3", type=Path, default=ROUND3)
    p.add_argument("--round2", type=Path, default=ROUND2)
    p.add_argument("-o", "--out", type=Path, default=None, help="write the markdown here (default: print it)")
    p.add_argument("--pictures", action="store_true", help="also draw each contrast's trade-off plot beside it")
    args = p.parse_args(argv)
    if args.out is not None and args.out.is_dir():
        p.error(f"-o {args.out} is a folder; name the markdown file, e.g. {args.out / 'table.md'}")
    text = report(args.round3, args.round2)
    if args.pictures:
        for path in pictures(load(args.round3), args.round3):
            print(f"written to {path}")
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
