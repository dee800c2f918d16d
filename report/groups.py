"""The report's grouping and statistics: results JSONs loaded, runs grouped into arms by every setting
but their seed, each arm paired with its baseline, paired differences and their t-intervals."""
from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

from cam.rules import CAM_FREE_RULES, QUADRANTS
from part import BASE_OF, VARIANTS, PartSettings
from runner.cli.settings import EARLIER_DEFAULTS, report_ignores, reweighting_only
from runner.infra.files import PROGRESS_SUFFIX


METRICS = (("natural", "natural"), ("pgd20", "PGD-20"), ("mma", "MMA"), ("aa", "AA"), ("aa-standard", "AA (standard)"))


# Runs are averaged together, or paired with a baseline, only when all their settings agree: every
# recorded argument except those whose Role (runner/cli/settings.py) is NONE, the script and the seed.
NOT_SETTINGS = report_ignores()


# Settings only the pixel reweighting reads (Role.REWEIGHTING): a baseline (--no-reweight) ignores them.
PART_ONLY = reweighting_only()


# What the report reads of a record besides its name and accuracies, and the type each must have where
# it is recorded (None: not recorded).
NUMBER = (int, float)
READ_TOP = {"run_id": str, "machine": dict, "seconds": dict, "history": list, **{k: NUMBER for k, _ in METRICS}}
READ_ARGS = {"seed": int, "warm_up": NUMBER, "mask_rule": str, "region_eps": dict}


def _odd(record: dict, kinds: dict, prefix: str = "") -> list[str]:
    """The keys of `kinds` that `record` holds with another type."""
    return [prefix + k for k, kind in kinds.items() if record.get(k) is not None and not isinstance(record[k], kind)]


def load_runs(paths: list[str]) -> list[dict]:
    """The results files among `paths`, each with its name and file; an unfinished evaluation's progress
    file (a run still going, `results/*.json` matches it) is passed over, anything else unreadable or
    with values the report cannot read is an error."""
    runs = []
    for p in paths:
        if str(p).endswith(PROGRESS_SUFFIX):
            continue
        try:
            run = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read results file {p}: {exc}") from None
        if not isinstance(run, dict) or not isinstance(run.get("method"), str) or "args" not in run:
            raise ValueError(f"{p} is not a results file of train_eval_part*.py")
        if not isinstance(run["args"], dict):
            raise ValueError(f"{p}: its args are a {type(run['args']).__name__}, not the run's settings by name; "
                             "correct the file or leave it out")
        eps = run["args"].get("region_eps")
        odd = _odd(run, READ_TOP) + _odd(run["args"], READ_ARGS, "args.") + (
            ["args.region_eps"] if isinstance(eps, dict) and not all(isinstance(v, NUMBER) for v in eps.values())
            else [])
        if odd:
            raise ValueError(f"{p}: odd values of {', '.join(odd)} (not the types a run records); correct the file "
                             "or leave it out")
        run["name"] = Path(p).stem if Path(p).stem != "results" else Path(p).parent.name
        run["file"] = str(p)
        runs.append(run)
    return runs


def identity(run: dict) -> tuple:
    """What tells a loaded run apart (same_run): its file, its run_id, and its method, seed and settings."""
    return (Path(run["file"]).resolve(), run.get("run_id"),
            (run["method"], run["args"].get("seed"), settings(run)))


def same_run(a: tuple, b: tuple) -> str | None:
    """Why two runs of these identities are one, None where they are not: the same file, the same
    run_id (a copy, even one whose settings were edited), or the same method, settings and seed (a
    rerun of one run is not another replicate: on a CPU it repeats the numbers to the bit)."""
    if a[0] == b[0]:
        return "the same file"
    if a[1] and a[1] == b[1]:
        return "the same run_id"
    return "the same settings and seed" if a[2] == b[2] else None


def distinct_runs(runs: list[dict]) -> tuple[list[dict], list[tuple[dict, dict, str]]]:
    """The runs with each run once (its first file), and (dropped, the one kept, why) for every other."""
    kept, dropped = [], []
    for r in runs:
        mine = identity(r)
        first = next(((k, why) for k, theirs in kept if (why := same_run(theirs, mine))), None)
        if first:
            dropped.append((r, *first))
        else:
            kept.append((r, mine))
    return [r for r, _ in kept], dropped


def name_apart(runs: list[dict]) -> list[dict]:
    """Runs whose name another run has too, renamed with their seed (and a count where that is not
    enough), so that none overwrites another's picture; returns the renamed ones."""
    counts = Counter(r["name"] for r in runs)
    taken, renamed = set(counts), []
    for r in runs:
        if counts[r["name"]] > 1:
            base = name = f"{r['name']}_seed{r['args'].get('seed')}"
            n = 1
            while name in taken:
                n += 1
                name = f"{base}_{n}"
            taken.add(name)
            r["name"] = name
            renamed.append(r)
    return renamed


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


def start_of(run: dict) -> str:
    """The run's training attack's random start after the warm-up, in words (part.step); "–"
    where its recorded arguments do not say."""
    from part.step import BASE_METHODS, start_in_words
    try:
        args = argparse.Namespace(**{**EARLIER_DEFAULTS, **run["args"]})
        return start_in_words(PartSettings.from_args(args), BASE_METHODS[VARIANTS[args.method].base_key])
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


# Differences of percentages carry float error (25.40 − 25.60 is not exactly −0.20): below this they are equal.
ALIKE = 1e-9


def alike(diffs: list[float]) -> bool:
    """Every difference the same (SD 0 up to float error): a t-interval has no width to give."""
    return statistics.stdev(diffs) <= ALIKE


def t_p_value(diffs: list[float]) -> float:
    """Two-sided p of the paired t-test that the mean difference is 0 (where every difference is the same:
    1.0 if it is 0, else 0.0)."""
    from scipy import stats
    if alike(diffs):
        return 1.0 if abs(statistics.mean(diffs)) <= ALIKE else 0.0
    sd = statistics.stdev(diffs)
    return float(2 * stats.t.sf(abs(statistics.mean(diffs)) / (sd / len(diffs) ** 0.5), len(diffs) - 1))


def block_f_test(rows: list[list[float]]) -> tuple[float, int, int, float]:
    """Randomised-block ANOVA of a treatment effect: `rows` one list per treatment, each over the same blocks
    (seeds) in the same order. Returns F = MS(treatment) / MS(residual), its degrees of freedom (k − 1,
    (k − 1)(b − 1)) and p from the F distribution."""
    from scipy import stats
    k, b = len(rows), len(rows[0])
    grand = statistics.mean(v for row in rows for v in row)
    block_means = [statistics.mean(row[j] for row in rows) for j in range(b)]
    treat = b * sum((statistics.mean(row) - grand) ** 2 for row in rows)
    resid = sum((row[j] - statistics.mean(row) - block_means[j] + grand) ** 2 for row in rows for j in range(b))
    df1, df2 = k - 1, (k - 1) * (b - 1)
    f = (treat / df1) / (resid / df2)
    return f, df1, df2, float(stats.f.sf(f, df1, df2))


def detectable_effect(sd: float, n: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The true mean difference a two-sided paired t-test at level alpha detects with probability `power`
    from n pairs whose differences have standard deviation sd (exact, by the noncentral t)."""
    from scipy import optimize, stats
    if sd == 0 or n < 2:
        return 0.0 if sd == 0 else float("inf")
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(effect: float) -> float:
        nc = effect / (sd / n ** 0.5)
        lower = stats.nct.cdf(-crit, df, nc)          # NaN far in the tail, where it is 0
        return stats.nct.sf(crit, df, nc) + (0.0 if lower != lower else lower) - power
    high = sd
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 1e-9 * sd, high))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (the family-wise error rate), in their order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def matched(a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    """The runs of arms a and b paired by seed."""
    by_seed = {r["args"].get("seed"): r for r in b}
    return [(r, by_seed[r["args"].get("seed")]) for r in a if r["args"].get("seed") in by_seed]


def seed_order(seed: int | None) -> tuple:
    """The sort key of seeds: in order, a seed the record lacks (None) last."""
    return seed is None, seed or 0


def paired(pairs: list[tuple[dict, dict]], key: str) -> list[float]:
    """x[key] − y[key] over the pairs where both have it."""
    return [x[key] - y[key] for x, y in pairs if x.get(key) is not None and y.get(key) is not None]


def figure1_quadrant(run: dict) -> str | None:
    """The quadrant a Figure 1 run gives the lower budget (the others all share a higher one), else None."""
    a = run["args"]
    eps = a.get("region_eps") or {}
    if a.get("mask_rule") != "region" or a.get("no_reweight") or len(eps) != 4:
        return None
    low = min(eps, key=eps.get)
    others = {v for q, v in eps.items() if q != low}
    return low if len(others) == 1 and eps[low] < others.pop() else None


def group_label(key: tuple, groups: dict[tuple, list[dict]]) -> str:
    """The method, plus the settings in which this group differs from the other summarised groups of
    that method (and that it sets)."""
    return key[0] + "".join(f", {k}={_value_text(k, v)}" for k, v in _differing(key, groups))


def _differing(key: tuple, groups: dict[tuple, list[dict]]) -> list[tuple[str, object]]:
    """(setting, value) of each setting in which this group differs from the other groups of its method, by
    name; a setting it leaves unset (None: a rule's flag under another rule) names nothing."""
    method, mine = key
    others = [dict(k[1]) for k in groups if k[0] == method and k != key]
    mine = dict(mine)
    differ = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
    return [(k, json.loads(mine[k])) for k in differ if json.loads(mine[k]) is not None]


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


# A setting in a picture's legend, in words (from its value as the command line takes it).
def _share(v: str) -> str:
    return f"{100 * float(v):g} %"


SETTING_WORDS = {
    "warm_up": lambda v: f"{v} warm-up epochs", "region_eps": lambda v: f"region budgets {v}",
    "mask_rule": lambda v: f"mask rule {v}", "top_share": lambda v: f"ε on each image's top {_share(v)} of the map",
    "random_share": lambda v: f"ε on a random {_share(v)} of the elements", "low_epsilon": lambda v: f"ε_low {v}",
    "epsilon": lambda v: f"ε {v}", "cam": lambda v: f"map {v}", "cam_refresh": lambda v: f"CAM refresh {v}",
    "region_start": lambda v: "random start in ±ε" if v == "epsilon" else "random start within the region budgets",
    "train_subset": lambda v: f"{v} training images", "epochs": lambda v: f"{v} epochs",
    "clip_part_start": lambda v: "PART's start clipped" if v == "True" else "PART's start not clipped",
    "attack": lambda v: f"{v} attack"}


def group_words(key: tuple, groups: dict[tuple, list[dict]]) -> str:
    """group_label in words, for a legend: the method, then each setting in which the group differs from the
    other groups of its method, as SETTING_WORDS says it (others as 'name value')."""
    words = [SETTING_WORDS.get(k, lambda v, k=k: f"{k.replace('_', ' ')} {v}")(
        _value_text(k, v).replace("=", " ").replace(",", ", ")) for k, v in _differing(key, groups)]
    return key[0] + (": " + "; ".join(words) if words else "")


def arms(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by group_key, each group under its label in words (for the arm pictures' legends)."""
    groups = grouped(runs)
    return {group_words(k, groups): m for k, m in groups.items()}
