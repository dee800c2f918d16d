"""`python -m report` on the results files a user may hand it by mistake: one run given twice, a record
with odd values, two runs of one name, an output path that is a file."""
import json
import shutil

import pytest

import report.__main__ as report_cli
from runner.cli.args import get_args

PGD20 = {1: 14.0, 2: 22.0, 3: 25.0}      # PART's three seeds: 20.33 ± 5.69


def results(path, seed, *flags, **top):
    """A results JSON as train_eval_part.py writes one (the keys the report reads), PART at `seed`."""
    args = vars(get_args("part", ["--seed", str(seed), "--results", str(path), *flags]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "method": "PART", "script": "train_eval_part.py", "args": args, "epochs_done": 80,
        "natural": 60.0 + seed, "pgd20": PGD20.get(seed, 20.0), "mma": None, "aa": None, "aa-standard": None,
        "history": [{"epoch": 1, "loss": 2.0, "lr": 0.01}], "device": "cpu",
        "machine": {"cpu": "test CPU", "threads": 1}, **top}))
    return str(path)


@pytest.fixture(autouse=True)
def blank_pictures(monkeypatch):
    """The pictures as empty files (drawing them takes seconds; what is counted and named is the point here)."""
    for name in ("plot_curves", "plot_tradeoff", "plot_arms", "plot_arm_curves"):
        monkeypatch.setattr(report_cli, name, lambda runs, path, *rest: path.touch())


def seeds(tmp_path):
    return [results(tmp_path / f"part_seed{s}.json", s) for s in PGD20]


def refused(capsys, argv, *words):
    """The report refuses: exit 2, one line on stderr holding `words`."""
    capsys.readouterr()
    assert report_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("how", ["a copy beside the seeds", "the same path twice"])
def test_a_run_given_twice_is_refused_or_dropped_never_counted_twice(tmp_path, capsys, how):
    paths = seeds(tmp_path / "study")
    copy = str(tmp_path / "study" / "part_seed1.bak.json")
    if how == "a copy beside the seeds":
        shutil.copy(paths[0], copy)
    else:
        copy = paths[0]
    out = tmp_path / "report"
    refused(capsys, [*paths, copy, "-o", str(out)], paths[0], copy, "--drop-duplicates")
    assert not out.exists()
    assert report_cli.main([*paths, copy, "-o", str(out), "--drop-duplicates"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert [line for line in said if copy in line and paths[0] in line][0].startswith(f"dropped {copy}")
    assert "| PART | 3 | 62.00 ± 1.00 | 20.33 ± 5.69 |" in (out / "table.md").read_text()


def test_one_run_id_is_one_run_and_two_are_two(tmp_path, capsys):
    """A run_id says which files are one run even where their settings say otherwise (a copy edited
    elsewhere); a rerun with equal settings and seed is the same run under another run_id."""
    paths = [results(tmp_path / "a" / f"part_seed{s}.json", s, run_id=f"r{s}") for s in PGD20]
    moved = results(tmp_path / "b" / "seed1_moved.json", 1, "--lr", "0.02", run_id="r1")
    refused(capsys, [*paths, moved, "-o", str(tmp_path / "o")], moved, paths[0], "run_id", "--drop-duplicates")
    rerun = results(tmp_path / "b" / "seed1_rerun.json", 1, run_id="r2")
    refused(capsys, [paths[0], rerun, "-o", str(tmp_path / "o")], rerun, "the same settings and seed")
    other_seed = results(tmp_path / "b" / "seed9.json", 9, run_id="r9")
    assert report_cli.main([paths[0], other_seed, "-o", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize("key,value", [
    ("args", [1, 2]), ("args", "seed=1"), ("args.seed", [1]), ("args.warm_up", "3"), ("pgd20", "14%"),
    ("args.region_eps", ["ul", "ur", "bl", "br"]),
    ("args.region_eps", {"ul": "6/255", "ur": 0.05, "bl": 0.05, "br": 0.05}),
])
def test_a_record_with_odd_values_is_one_line_naming_the_file(tmp_path, capsys, key, value):
    good = seeds(tmp_path)
    bad = tmp_path / "odd.json"
    run = json.loads((tmp_path / "part_seed1.json").read_text())
    run["args"].update({"mask_rule": "region", "seed": 4})
    if key.startswith("args."):
        run["args"][key[5:]] = value
    else:
        run[key] = value
    bad.write_text(json.dumps(run))
    refused(capsys, [*good, str(bad), "-o", str(tmp_path / "o")], str(bad), key.split(".")[-1])
    assert not (tmp_path / "o").exists()


def test_a_run_whose_record_lacks_its_seed_joins_the_table(tmp_path, capsys):
    paths = seeds(tmp_path)
    run = json.loads((tmp_path / "part_seed1.json").read_text())
    del run["args"]["seed"]
    (tmp_path / "unseeded.json").write_text(json.dumps(run))
    assert report_cli.main([*paths[1:], str(tmp_path / "unseeded.json"), "-o", str(tmp_path / "o")]) == 0
    table = (tmp_path / "o" / "table.md").read_text()
    assert "| arm | seed 2 | seed 3 | seed None |" in table
    assert "| PART | 62.00 / 22.00 | 63.00 / 25.00 | 61.00 / 14.00 |" in table


def test_two_runs_of_one_name_keep_a_curve_picture_each(tmp_path, capsys):
    a = results(tmp_path / "a" / "part.json", 1)
    b = results(tmp_path / "b" / "part.json", 2)
    out = tmp_path / "o"
    assert report_cli.main([a, b, "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert {p.name for p in out.glob("curves_*.png")} == {"curves_part_seed1.png", "curves_part_seed2.png"}
    assert f"{a} is run part_seed1" in said and f"{b} is run part_seed2" in said
    assert str(out / "curves_part_seed2.png") in said.splitlines()
    table = (out / "table.md").read_text()
    assert "| part_seed1 | PART | 1 |" in table and "| part_seed2 | PART | 2 |" in table


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    refused(capsys, [*seeds(tmp_path), "-o", str(taken)], str(taken), "folder")
    assert taken.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "part_seed1.json", "part_seed2.json", "part_seed3.json"]


def test_round3_output_that_is_a_folder_is_one_line(tmp_path, capsys):
    from report import round3
    with pytest.raises(SystemExit) as exc:
        round3.main(["-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "is a folder" in err, err
