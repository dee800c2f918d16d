"""The reproduction runner: writes results and logs, skips finished runs, resumes interrupted ones."""
import json

import pytest

from experiments import run as runner
from experiments.runs import SUITES
from part import VARIANTS
from runner.infra.interrupt import TEST_HOOK
from tests.conftest import TINY_MODEL


@pytest.fixture(autouse=True)
def committed_tree(monkeypatch):
    """The runner refuses a tree with uncommitted source changes (tested in test_placement.py); these
    tests run in whatever tree the suite runs in."""
    monkeypatch.setattr(runner, "source_changes", lambda: [])


TINY = f"--model {TINY_MODEL} --batch-size 32 --num-steps 1 --warm-up 1 --eval natural --eval-subset 8 --save-masks 0 --no-download"


@pytest.fixture
def tiny_table(monkeypatch):
    """at_seed1 and part_seed1 of the reproduction with the table's evaluations left unset, so that --extra
    may give TINY's (--extra may not change a flag the table sets: the results go under the run's name)."""
    monkeypatch.setitem(runner.SUITES, "reproduction", {
        "at_seed1": (1, "train_eval_part.py", "--seed 1 --no-reweight"),
        "part_seed1": (1, "train_eval_part.py", "--seed 1 --cam-refresh batch")})


def test_each_reweighted_run_of_the_reproduction_has_its_baseline_beside_it():
    """Every PART variant's run (a CAM rule; the Figure 1 runs pair with each other) has its base method's
    --no-reweight run at the same seed and priority, so that running the table by priority always leaves
    PART numbers paired with their baselines."""
    import shlex

    from cam.rules import CAM_FREE_RULES
    from runner.cli.args import get_args
    runs = {}
    for name, (prio, script, flags) in SUITES["reproduction"].items():
        key = {m.script: key for key, m in VARIANTS.items()}[script]
        args = get_args(key, shlex.split(flags))
        if args.mask_rule not in CAM_FREE_RULES:
            runs[name] = (prio, key, args.seed, args.no_reweight)
    reweighted = [r for r in runs.values() if not r[3]]
    assert reweighted and any(r[3] for r in runs.values())
    for prio, key, seed, _ in reweighted:
        assert (prio, key, seed, True) in runs.values()


@pytest.mark.parametrize("suite, name", [(suite, name) for suite, runs in SUITES.items() for name in sorted(runs)])
def test_every_named_run_is_a_command_line_its_script_takes(suite, name):
    """Each run of the table names an entry script and flags that script parses (a typo in a flag, a
    rule without its share, a removed option would otherwise surface only when the run starts)."""
    import shlex

    from runner.cli.args import get_args
    _, script, flags = SUITES[suite][name]
    key = {m.script: key for key, m in VARIANTS.items()}[script]
    get_args(key, shlex.split(flags))


def test_runs_skip_and_resume(tiny_folder, tmp_path, capsys, monkeypatch, tiny_table):
    common = ["--data-dir", str(tiny_folder), "--results-dir", str(tmp_path / "res"),
              "--checkpoint-dir", str(tmp_path / "ckpt"), "--extra", TINY + " --epochs 2"]
    # A preempted run: SIGTERM in the second epoch, after its first batch.
    monkeypatch.setenv(TEST_HOOK, "2:0:SIGTERM")
    assert runner.main(["at_seed1", *common]) == 143
    assert "at_seed1: exit code 143" in capsys.readouterr().out
    assert (tmp_path / "ckpt" / "at_seed1" / "epoch2_batch1.pt").exists()
    monkeypatch.delenv(TEST_HOOK)
    # The same command again continues it.
    assert runner.main(["at_seed1", *common]) == 0
    assert "--resume auto" in capsys.readouterr().out
    res = json.loads((tmp_path / "res" / "at_seed1.json").read_text())
    assert res["method"] == "AT" and res["epochs_done"] == 2 and len(res["history"]) == 2
    assert res["resumes"][0]["checkpoint"].endswith("epoch2_batch1.pt")
    assert "resumed from" in (tmp_path / "res" / "at_seed1.log").read_text()
    assert runner.main(["at_seed1", *common]) == 0
    assert "results exist, skipped" in capsys.readouterr().out


def test_unknown_run_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        runner.main(["no_such_run"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown run no_such_run" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_jobs_give_the_same_results_as_one_after_another(tiny_folder, tmp_path, tiny_table):
    extra = TINY + " --epochs 2 --test-subset 16 --threads 1"    # alone or not, the same thread count
    results = {}
    # Two runs side by side (--jobs 2) against PART alone (the one with the most to disturb: its CAM).
    for jobs, names in (("1", ["part_seed1"]), ("2", ["at_seed1", "part_seed1"])):
        out = tmp_path / jobs
        assert runner.main([*names, "--data-dir", str(tiny_folder), "--results-dir", str(out / "res"),
                            "--checkpoint-dir", str(out / "ckpt"), "--jobs", jobs, "--aa-subset", "5",
                            "--extra", extra]) == 0
        results[jobs] = {n: json.loads((out / "res" / f"{n}.json").read_text()) for n in names}
    for name in ("part_seed1",):
        a, b = results["1"][name], results["2"][name]
        assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
        assert (a["natural"], a["counts"]) == (b["natural"], b["counts"])
        assert {k: v for k, v in a["args"].items() if k not in ("model_dir", "results")} == \
               {k: v for k, v in b["args"].items() if k not in ("model_dir", "results")}
    assert results["2"]["at_seed1"]["method"] == "AT" and results["2"]["part_seed1"]["method"] == "PART"
    assert results["2"]["part_seed1"]["args"]["aa_subset"] == 5


def test_cpu_study_arms_pair_in_the_report(capsys, tmp_path, monkeypatch):
    """The study's four arms of a seed differ only in the reweighting's own settings, so the report
    pairs them (every arm minus AT, PART minus each control); the uniform arm's budget is PART's mean."""
    import shlex
    from experiments.runs import SUITES, STUDY_SEEDS, STUDY_SHARE, uniform_budget
    from common.argtypes import parse_fraction
    from runner.cli.args import get_args
    from report import groups
    study = SUITES["cpu-study"]
    arms = {n: v for n, v in study.items() if v[1] == "train_eval_part.py"}
    assert len(arms) == 4 * len(STUDY_SEEDS) >= 16 and {p for p, _, _ in arms.values()} == set(STUDY_SEEDS)
    variants = {n: v for n, v in study.items() if n not in arms}    # TRADES/PART-T, MART/PART-M: 2 seeds
    assert sorted(variants) == sorted(f"{m}_seed{s}" for m in ("trades", "part_t", "mart", "part_m") for s in (1, 2))
    assert all(("--no-reweight" in f) == (n.split("_seed")[0] in ("trades", "mart"))
               for n, (_, _, f) in variants.items())
    methods = {"part": "PART", "at": "AT", "random": "AT-random", "uniform": "AT-region"}
    runs = []
    for arm, method in methods.items():
        _, script, flags = study[f"{arm}_seed1"]
        args = vars(get_args("part", shlex.split(flags)))
        runs.append({"name": arm, "method": method, "args": args})
    assert sorted(label for _, _, label in groups.arm_pairs(runs)) == [
        "AT-random − AT", "AT-region − AT", "PART − AT", "PART − AT-random", "PART − AT-region"]
    uniform = runs[3]["args"]["region_eps"]
    assert len(uniform) == 4 and len(set(uniform.values())) == 1
    assert uniform["ul"] == pytest.approx(STUDY_SHARE * 8 / 255 + (1 - STUDY_SHARE) * 7 / 255, abs=1e-6)
    assert parse_fraction(uniform_budget(0.5)) == pytest.approx(7.5 / 255)
    assert runs[2]["args"]["random_share"] == STUDY_SHARE
    # With no names, the whole suite, into its own folders; the runs' flags win over the runner's.
    monkeypatch.chdir(tmp_path)             # the default folders are relative: none of the repository's
    assert runner.main(["--suite", "cpu-study", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("train_eval_part.py") == len(arms) and "results/cpu-study/at_seed4.json" in out
    assert out.count("train_eval_part_t.py") == out.count("train_eval_part_m.py") == 4
    printed = [ln.split(": ", 1)[0] for ln in out.splitlines()]
    assert set(printed[:len(arms)]) == set(arms)          # the four arms first, then the TRADES / MART pairs
    key_of = {m.script: key for key, m in VARIANTS.items()}
    for name, (_, script, flags) in variants.items():       # each pair's flags are its own script's
        assert get_args(key_of[script], shlex.split(flags)).seed in (1, 2)
    assert runner.main(["--suite", "cpu-study", "--priority", "5", "--dry-run"]) == 0
    assert [ln.split(": ", 1)[0] for ln in capsys.readouterr().out.splitlines()] == [
        "trades_seed1", "part_t_seed1", "trades_seed2", "part_t_seed2"]
    line = next(ln for ln in out.splitlines() if ln.startswith("part_seed1: "))
    cmd = shlex.split(line.split(": ", 1)[1])
    assert get_args("part", cmd[2:]).eval_every == 2       # the runner's default is 5


# --- mistakes on the runner's command line: one line, exit 2, before any run starts, nothing written ---

@pytest.fixture
def no_run_starts(monkeypatch, tmp_path):
    """The tests below run in an empty folder (the default results and checkpoint folders are relative),
    and a run that the runner would start fails the test instead (no training here)."""
    monkeypatch.chdir(tmp_path)

    def start(cmd, **kwargs):
        raise AssertionError(f"a run started: {cmd}")
    monkeypatch.setattr(runner.subprocess, "run", start)


def refused(capsys, argv: list[str]) -> str:
    """runner.main(argv) stops with exit code 2 and one line on stderr, before printing any command."""
    with pytest.raises(SystemExit) as exc:
        runner.main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "", out
    assert err.count("\n") == 1 and err.startswith("python -m experiments.run: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("extra, why", [("--lr '0.1", "No closing quotation"), ("--lr 0.1\\", "No escaped character")])
def test_extra_that_is_not_a_shell_command_line_is_one_line(extra, why, capsys, tmp_path, no_run_starts):
    err = refused(capsys, ["at_seed1", "--extra", extra])
    assert why in err and repr(extra) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--results-dir", "--checkpoint-dir"])
@pytest.mark.parametrize("under", [False, True])
def test_a_folder_that_is_a_file_is_one_line_before_any_run(option, under, capsys, tmp_path, no_run_starts):
    """A --results-dir (or --checkpoint-dir) that names a file, or a folder under a file, cannot be made:
    refused before anything is written, the file left as it was."""
    (tmp_path / "taken").write_text("mine")
    folder = tmp_path / "taken" / "sub" if under else tmp_path / "taken"
    err = refused(capsys, ["at_seed1", option, str(folder)])
    assert f"{option} {folder}" in err and "is a file, not a folder" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "taken"] and (tmp_path / "taken").read_text() == "mine"


def _table_flags(suite: str, name: str) -> list[list[str]]:
    """Each flag of the run's table entry with its value, as the table spells it (--seed 1, --no-reweight)."""
    import shlex
    tokens = shlex.split(SUITES[suite][name][2])
    starts = [i for i, t in enumerate(tokens) if t.startswith("--")] + [len(tokens)]
    return [tokens[a:b] for a, b in zip(starts, starts[1:])]


@pytest.mark.parametrize("suite, name", [("reproduction", "at_seed1"), ("reproduction", "fig1_br6_seed1"),
                                         ("cpu-study-2", "part_paper_seed1"), ("cpu-study-3", "box_seed1")])
def test_extra_may_not_change_a_flag_the_table_sets(suite, name, capsys, tmp_path, no_run_starts):
    """Every flag that the run table gives a run is refused in --extra, in either spelling, even with the
    table's own value (--extra "--seed 2" would otherwise write a seed-2 run under the name ..._seed1,
    skipped as done from then on)."""
    flags = _table_flags(suite, name)
    assert [f for f, *_ in flags][:1] == ["--seed"] and len(flags) >= 2
    for flag, *value in flags:
        for spelling in ([flag, *value], [f"{flag}={value[0]}"] if value else [flag]):
            extra = " ".join(spelling)
            for dry in ([], ["--dry-run"]):
                err = refused(capsys, ["--suite", suite, name, f"--extra={extra}", *dry])
                assert f"--extra {flag}: the run table (experiments/runs.py) gives {name} {flag}" in err, err
    err = refused(capsys, ["at_seed1", "--extra", "--seed 2 --epochs 3"])
    assert "gives at_seed1 --seed 1" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, flag, other", [("--no-reweight", "--no-reweight", "at_seed1: --no-reweight"),
                                                ("--warm-up=0", "--warm-up", "fig1_br6_seed1: --warm-up 0")])
def test_extra_may_not_set_a_flag_that_tells_the_table_s_runs_apart(extra, flag, other, capsys, tmp_path,
                                                                     no_run_starts):
    """part_seed1 leaves --no-reweight unset, but the table tells its AT runs apart by it: --extra
    --no-reweight would write an AT run under the name part_seed1. Every flag the suite's table gives any of
    its runs is refused."""
    err = refused(capsys, ["part_seed1", f"--extra={extra}", "--dry-run"])
    assert f"--extra {flag}: the run table (experiments/runs.py) sets it for runs of suite reproduction ({other})" \
        in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, flag", [("--model-dir elsewhere", "--model-dir"), ("--results=x.json", "--results"),
                                         ("--data-dir /data", "--data-dir"), ("--resume none", "--resume"),
                                         ("--no-progress", "--no-progress")])
def test_extra_may_not_change_a_flag_the_runner_sets(extra, flag, capsys, tmp_path, no_run_starts):
    """The runner gives every run its data, checkpoint and results paths and --resume auto (its own
    options choose them); --extra may not replace them."""
    for dry in ([], ["--dry-run"]):
        err = refused(capsys, ["at_seed1", f"--extra={extra}", *dry])
        assert f"--extra {flag}: the runner gives every run {flag} " in err
    assert list(tmp_path.iterdir()) == []


def test_extra_reads_flags_as_the_script_does(capsys, tmp_path, no_run_starts):
    """An alias of a flag the table sets is that flag (box_seed1 sets --map, whose other name is --cam); the
    entry scripts take no abbreviation, so one in --extra is refused up front, as is any flag the script
    refuses (a run that fails at once): no run starts, nothing is written."""
    err = refused(capsys, ["--suite", "cpu-study-3", "box_seed1", "--extra", "--cam gradcam"])
    assert "--extra --cam: the run table (experiments/runs.py) gives box_seed1 --map box" in err
    for extra, said in (("--see 2", "unrecognized arguments: --see 2"), ("--lr abc", "invalid number 'abc'"),
                        ("--epochs 2", "--warm-up (20) must not exceed --epochs (2)")):
        for dry in ([], ["--dry-run"]):
            err = refused(capsys, ["at_seed1", "--extra", extra, *dry])
            assert "train_eval_part.py refuses at_seed1's command line: " in err and said in err, err
    assert list(tmp_path.iterdir()) == []


def test_dry_run_writes_nothing(capsys, tmp_path, no_run_starts):
    assert runner.main(["at_seed1", "part_seed1", "--dry-run"]) == 0
    assert runner.main(["--suite", "cpu-study", "--priority", "1", "--dry-run", "--results-dir", "a/b",
                        "--checkpoint-dir", "c/d"]) == 0
    out = capsys.readouterr().out
    assert "at_seed1: " in out and str(tmp_path / "a" / "b" / "part_seed1.json") in out
    assert list(tmp_path.iterdir()) == []


def test_extra_adds_the_flags_no_run_of_the_table_sets(capsys, tmp_path, monkeypatch, no_run_starts):
    """Flags that no run of the table sets go through, in either spelling; --threads=3 is the run's thread count
    (the runner's share of the cores is added only where no --threads is given)."""
    import shlex

    from runner.cli.args import get_args
    monkeypatch.setattr("runner.infra.provenance.cores_available", lambda: 8)
    assert runner.main(["at_seed1", "--dry-run", "--extra", "--loader resident --threads=3 --save-freq 2"]) == 0
    cmd = shlex.split(capsys.readouterr().out.split(": ", 1)[1])
    args = get_args("part", cmd[2:])
    assert (args.threads, args.loader, args.save_freq, args.seed) == (3, "resident", 2, 1)
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_at_once_leaves_its_log_and_no_empty_folder(capsys, tmp_path, monkeypatch):
    """A run the runner starts and that stops at once (here: its script exits 2 at the start) leaves its
    log, naming the failure, in the results folder, and no folder of the runner's making besides."""
    monkeypatch.chdir(tmp_path)

    def start(cmd, stdout, **kwargs):
        stdout.write("train_eval_part.py: error: no CIFAR10 data found\n")
        return runner.subprocess.CompletedProcess(cmd, 2)
    monkeypatch.setattr(runner.subprocess, "run", start)
    assert runner.main(["at_seed1", "--results-dir", "res", "--checkpoint-dir", "ckpt"]) == 2
    assert "at_seed1: exit code 2" in capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["res", "res/at_seed1.log"]
    assert "no CIFAR10 data found" in (tmp_path / "res" / "at_seed1.log").read_text()


def test_masking_checks_pair_each_model_with_the_at_model_of_its_seed(tmp_path, capsys):
    """experiments.masking: a check per trained model, its transfer source the AT model of the same seed;
    a check whose results exist is skipped, one whose models are missing is named."""
    from experiments.masking import checks
    ck, res = tmp_path / "ck", tmp_path / "res"
    for name in ("masking_at_seed1", "masking_cifar_gradient_seed1", "masking_part_paper_seed1", "masking_cifar_gradient_seed2"):
        (ck / name).mkdir(parents=True)
        (ck / name / "epoch10.pt").write_bytes(b"")
    (res / "masking").mkdir(parents=True)
    (res / "masking" / "part_paper_seed1.json").write_text("{}")
    todo = dict(checks(res, ck))
    assert sorted(todo) == ["at_seed1", "cifar_gradient_seed1"]
    cmd = todo["cifar_gradient_seed1"]
    assert cmd[cmd.index("--source") + 1] == str(ck / "masking_at_seed1" / "epoch10.pt")
    assert "cifar_gradient_seed2: its models are not trained yet" in capsys.readouterr().out
