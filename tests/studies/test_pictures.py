"""Mask grids, periodic evaluation and the report command."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import train
from report import groups, plots, tables
import report.__main__ as report_cli
from runner.infra.checkpoint import load_checkpoint
import runner.training.curves_and_grids
import runner.training.run


@pytest.fixture
def captured_panels(monkeypatch):
    seen = []
    real = runner.training.curves_and_grids.save_mask_grid

    def spy(panels, path, title=""):
        seen.append((panels, path))
        real(panels, path, title)
    monkeypatch.setattr(runner.training.curves_and_grids, "save_mask_grid", spy)
    return seen


@pytest.mark.parametrize("rule,extra,values", [
    ("official", [], {7, 8}), ("cam", [], {7, 8}),
    ("region", ["--region-eps", "ul=6/255,ur=12/255,bl=12/255,br=12/255"], {6, 12}),
])
def test_mask_grids(tiny_folder, tmp_path, captured_panels, rule, extra, values):
    train(tiny_folder, tmp_path, "--save-masks", "3", "--mask-rule", rule, *extra, "--eval", "natural")
    assert sorted(p.name for p in tmp_path.glob("masks_epoch*.png")) == ["masks_epoch1.png", "masks_epoch2.png"]
    assert len(captured_panels) == 2
    for panels, path in captured_panels:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (960, 520)       # 6 columns x 3 rows at 100 dpi
        assert panels["image"].shape == (3, 32, 32, 3) and panels["eps"].shape == (3, 3, 32, 32)
        assert set(np.round(np.unique(panels["eps"]) * 255).astype(int).tolist()) == values
        assert 0 <= panels["perturbation"].min() and panels["perturbation"].max() <= 1
        assert np.isnan(panels["cam"]).all() == (rule == "region")


def test_eval_every_history_and_untouched_training(tiny_folder, tmp_path):
    res = train(tiny_folder, tmp_path / "e", "--epochs", "3", "--eval-every", "2", "--eval-subset", "16",
                "--eval", "natural")
    rows = res["history"]
    assert ["natural" in r for r in rows] == [False, True, True]      # every 2 epochs, and the last
    assert all(0 <= r["pgd20"] <= r["natural"] <= 100 for r in rows[1:])
    assert {"loss", "lr", "seconds"} <= rows[0].keys()
    train(tiny_folder, tmp_path / "p", "--epochs", "3", "--eval", "natural")
    a = load_checkpoint(tmp_path / "e" / "epoch3.pt", torch.device("cpu"))["model"]
    b = load_checkpoint(tmp_path / "p" / "epoch3.pt", torch.device("cpu"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _rows(table: str) -> dict[str, dict[str, str]]:
    """The per-run table of a report: run name -> {column header: cell}."""
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == len(head):
            rows.setdefault(cells[0], dict(zip(head, cells)))
    return rows


def test_report_matches_its_json(tiny_folder, tmp_path):
    base = train(tiny_folder, tmp_path / "at", "--no-reweight", "--eval-every", "1", "--eval-subset", "8",
                 "--results", str(tmp_path / "at.json"))
    part = train(tiny_folder, tmp_path / "part", "--eval-every", "1", "--eval-subset", "8",
                 "--results", str(tmp_path / "part.json"))
    out = tmp_path / "report"
    assert report_cli.main([str(tmp_path / "at.json"), str(tmp_path / "part.json"), "-o", str(out)]) == 0
    rows = _rows((out / "table.md").read_text())
    assert rows["part"]["method"] == "PART" and rows["at"]["method"] == "AT" and rows["part"]["baseline"] == "at"
    assert float(rows["part"]["natural"]) == pytest.approx(part["natural"], abs=0.005)
    assert float(rows["at"]["PGD-20"]) == pytest.approx(base["pgd20"], abs=0.005)
    assert float(rows["part"]["Δ natural"]) == pytest.approx(part["natural"] - base["natural"], abs=0.006)
    assert float(rows["part"]["Δ PGD-20"]) == pytest.approx(part["pgd20"] - base["pgd20"], abs=0.006)
    assert rows["at"]["baseline"] == "–" and rows["at"]["AA (standard)"] == "–"
    for name in ("tradeoff.png", "curves_at.png", "curves_part.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300
    # What the runs cost and where: from each JSON's seconds and machine.
    walls = sorted(sum(r["seconds"].values()) / 60 for r in (base, part))
    cost = (out / "table.md").read_text().split("Cost: ")[1]
    assert cost.startswith(f"2 runs, each {walls[0]:.1f}–{walls[1]:.1f} min")
    assert f"{part['machine']['cpu']}, {part['machine']['threads']} torch thread" in cost and "(2 runs)" in cost


def test_report_seed_summary_and_bad_input(tmp_path, capsys):
    def fake(name, seed, nat):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"method": "PART", "args": {"seed": seed}, "natural": nat, "pgd20": 40.0,
                                    "mma": None, "aa": None, "history": [], "epochs_done": 1}))
        return str(path)
    # A run still evaluating leaves its progress file beside the results: `*.json` matches it, passed over.
    (tmp_path / "s3.eval-progress.json").write_text(json.dumps({"key": {}, "batches": {"aa": [[1, 2]]}}))
    runs = groups.load_runs([fake("s1", 1, 80.0), fake("s2", 2, 82.0), str(tmp_path / "s3.eval-progress.json")])
    table = tables.markdown_table(runs)
    assert len(runs) == 2 and "| PART | 2 | 81.00 ± 1.41 | 40.00 ± 0.00 | – | – | – | – |" in table
    # The same arm seed by seed: only the accuracies some run has, each run in its seed's column.
    assert "Seed by seed (natural / PGD-20, %):" in table and "| PART | 80.00 / 40.00 | 82.00 / 40.00 |" in table
    (tmp_path / "bad.json").write_text("{")
    capsys.readouterr()
    assert report_cli.main([str(tmp_path / "bad.json"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cannot read results file" in err and err.count("\n") == 1 and not (tmp_path / "o").exists()


def _fake_run(tmp_path, name, method, flags, natural, aa=None):
    from runner.cli.args import get_args
    key = {"PART": "part", "AT": "part", "PART-T": "part_t", "TRADES": "part_t", "AT-random": "part",
           "AT-region": "part", "PART-M": "part_m", "MART": "part_m"}[method]
    args = vars(get_args(key, flags + (["--no-reweight"] if method in ("AT", "TRADES", "MART") else [])))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"method": method, "args": args, "natural": natural, "pgd20": 40.0, "mma": None,
                                "aa": aa, "history": [{"epoch": 1, "loss": 2.0, "lr": 0.1, "natural": natural, "pgd20": 40.0}],
                                "epochs_done": 80}))
    return str(path)


def test_report_groups_and_pairs_by_every_setting(tmp_path):
    runs = groups.load_runs([
        _fake_run(tmp_path, "part_s1", "PART", ["--seed", "1"], 80.0),
        _fake_run(tmp_path, "part_s2", "PART", ["--seed", "2"], 82.0),
        _fake_run(tmp_path, "pair_s1", "PART", ["--seed", "1", "--cam-refresh", "official"], 60.0),
        _fake_run(tmp_path, "pair_s2", "PART", ["--seed", "2", "--cam-refresh", "official"], 62.0),
        _fake_run(tmp_path, "at_lr02_s1", "AT", ["--seed", "1", "--lr", "0.02"], 70.0),
        _fake_run(tmp_path, "at_s1", "AT", ["--seed", "1"], 75.0),
        _fake_run(tmp_path, "at_s2", "AT", ["--seed", "2", "--results", "elsewhere.json"], 76.0),
        _fake_run(tmp_path, "at_s2_again", "AT", ["--seed", "2", "--workers", "4"], 77.0),
        _fake_run(tmp_path, "part_step_s1", "PART", ["--seed", "1", "--step-size", "1/255"], 81.0),
        _fake_run(tmp_path, "part_t_s1", "PART-T", ["--seed", "1"], 81.0),
        _fake_run(tmp_path, "trades_beta3_s1", "TRADES", ["--seed", "1", "--beta", "3"], 81.0),
    ])
    by_name = {r["name"]: r for r in runs}
    base = {r["name"]: (groups.baseline_of(r, runs) or {}).get("name") for r in runs}
    # The one AT run with equal settings (the lr 0.02 run is not it), also for the official pairing
    # (a setting only PART reads); none for another step size or beta; two equal AT runs: ambiguous.
    assert base["part_s1"] == "at_s1" and base["pair_s1"] == "at_s1"
    assert base["part_step_s1"] is None and base["part_t_s1"] is None
    assert base["part_s2"] is None
    assert [r["name"] for r in groups.baseline_candidates(by_name["part_s2"], runs)] == ["at_s2", "at_s2_again"]
    table = tables.markdown_table(runs)
    rows = _rows(table)
    assert rows["part_s2"]["baseline"] == "ambiguous: at_s2, at_s2_again" and rows["part_s1"]["Δ natural"] == "+5.00"
    # Seed summary: batch masks and the official pairing apart, never averaged together.
    assert "| PART, cam_refresh=batch | 2 | 81.00 ± 1.41 |" in table
    assert "| PART, cam_refresh=official | 2 | 61.00 ± 1.41 |" in table
    # Output paths and worker counts are no settings; the lr is one: at_lr02_s1 stays apart.
    assert "| AT | 3 | 76.00 ± 1.00 |" in table


def test_report_pairs_the_study_arms_seed_by_seed(tmp_path):
    """The CPU study's four arms: every arm minus AT, PART minus each CAM-free control, paired by seed,
    with 95 % t-intervals (t(0.975, 2) = 4.3027), and the arm pictures."""
    arms = {"part": ("PART", [], (80.0, 81.0, 82.0)),
            "at": ("AT", [], (75.0, 75.5, 76.0)),
            "random": ("AT-random", ["--mask-rule", "random", "--random-share", "0.25"], (79.0, 79.0, 79.0)),
            "uniform": ("AT-region", ["--mask-rule", "region", "--region-eps", "ul=7/255"], (74.0, 77.0, 76.0))}
    paths = [_fake_run(tmp_path, f"{arm}_s{i + 1}", method, flags + ["--seed", str(i + 1)], nat[i], nat[i] - 40)
             for arm, (method, flags, nat) in arms.items() for i in range(3)]
    runs = groups.load_runs(paths)
    assert sorted(label for _, _, label in groups.arm_pairs(runs)) == [
        "AT-random − AT", "AT-region − AT", "PART − AT", "PART − AT-random", "PART − AT-region"]
    table = tables.markdown_table(runs)
    # PART − AT: differences 5, 5.5, 6: mean 5.5, sd 0.5, half-width 4.3027 * 0.5 / sqrt(3) = 1.242.
    assert "| PART − AT | 3 | +5.50 [+4.26, +6.74] * | +0.00 [the same at every seed] |" in table
    # AT-region − AT: -1, 1.5, 0: mean 0.17, sd 1.258, half-width 3.125: includes 0, no star.
    assert "| AT-region − AT | 3 | +0.17 [-2.96, +3.29] |" in table
    # PART − AT-random: 1, 2, 3: mean 2, sd 1, half-width 2.484.
    assert "| PART − AT-random | 3 | +2.00 [-0.48, +4.48] |" in table
    # Every arm's training start after the warm-up: PART's part_pgd and the random rule unclipped in ±ε,
    # AT's torchattacks PGD clipped, the region rule within its own map (--region-start map, the default).
    for arm, start in (("PART", "uniform ±ε"), ("AT-random", "uniform ±ε"), ("AT", "uniform ±ε, clipped to [0, 1]"),
                       ("AT-region", "uniform within its budget map")):
        assert re.search(rf"^\| {arm}(, [^|]*)? \| 3 \| .* \| {re.escape(start)} \|$", table, re.M), arm
    clean = _fake_run(tmp_path, "clean", "AT-region", ["--mask-rule", "region", "--region-eps", "ul=7/255",
                                                        "--region-start", "epsilon"], 74.0)
    assert groups.start_of(groups.load_runs([clean])[0]) == "uniform ±ε"
    # A measure some seeds lack (AutoAttack not run at seed 3 of AT): its cells say over how many seeds.
    at3 = json.loads(Path(paths[5]).read_text())
    Path(paths[5]).write_text(json.dumps({**at3, "aa": None}))
    table = tables.markdown_table(groups.load_runs(paths))
    # PART − AT on AA: 5, 5.5 at seeds 1 and 2 only: mean 5.25, half-width 12.706 * 0.354 / sqrt(2) = 3.18.
    assert "| PART − AT | 3 | +5.50 [+4.26, +6.74] * | +0.00 [the same at every seed] | – | +5.25 [+2.07, +8.43] * (2 seeds) |" in table
    assert "+8.43 AA (2 seeds)" in table and "| AT | 3 | 75.50 ± 0.50 | 40.00 ± 0.00 | – | 35.25 ± 0.35 (2 runs) |" in table
    # The pictures' robust axis: the AutoAttack most runs have; PGD-20 where none has one.
    runs = groups.load_runs(paths)
    assert plots.robust_axis(runs) == "aa"
    assert plots.robust_axis([{**r, "aa": None, "aa-standard": 30.0 if i else None} for i, r in enumerate(runs)]) == "aa-standard"
    assert plots.robust_axis([{**r, "aa": None} for r in runs]) == "pgd20"
    # A missing seed of one arm: paired over the common seeds only.
    written = report_cli.write_report(paths[:-1], tmp_path / "out")
    assert "| PART − AT-region | 2 |" in (tmp_path / "out" / "table.md").read_text()
    for name in ("arms_tradeoff.png", "arms_curves.png"):
        assert tmp_path / "out" / name in written
        with Image.open(tmp_path / "out" / name) as im:
            assert im.format == "PNG" and im.size[0] > 300


def test_report_pairs_only_within_a_base_method(tmp_path):
    """TRADES and MART share every setting (both read --beta 6): PART-T is paired with TRADES and PART-M
    with MART, never across."""
    paths = [_fake_run(tmp_path, f"{m}_s{s}", m, ["--seed", str(s)], 80.0 + s)
             for m in ("TRADES", "PART-T", "MART", "PART-M") for s in (1, 2)]
    runs = groups.load_runs(paths)
    assert sorted(label for _, _, label in groups.arm_pairs(runs)) == ["PART-M − MART", "PART-T − TRADES"]
    # The arm pictures, one pair per base method, named by it.
    written = {p.name for p in report_cli.write_report(paths, tmp_path / "out")}
    assert {"arms_tradeoff_TRADES.png", "arms_curves_MART.png"} <= written and "arms_tradeoff.png" not in written


@pytest.mark.parametrize("method,flags,attack,start", [
    ("part", [], "pgd", "uniform"), ("part", ["--attack", "mma"], "mma", "uniform_clipped"),
    ("part_t", [], "trades", "normal"), ("part_m", [], "pgd", "normal"),
])
def test_mask_grid_shows_the_training_attack(tiny_folder, tmp_path, captured_panels, method, flags, attack, start):
    from attacks.common import normal_start, uniform_clipped_start, uniform_start
    from attacks.mma import mma
    from attacks.pgd import pgd
    from attacks.trades import trades
    from cam.maps import compute_cam
    from cam.rules import epsilon_map
    from models.zoo import eval_mode
    from part import PartSettings
    from runner.cli.args import get_args
    from runner.evaluation.visualize import grid_panels
    args = get_args(method, ["--model", "smallcnn", "--data-dir", str(tiny_folder), "--no-download", "--num-steps",
                             "3", "--save-masks", "3", "--no-progress", "--model-dir", str(tmp_path), *flags])
    trainer, _, _, _ = runner.training.run.prepare(args)
    model = trainer.model
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.1)     # gradients that differ between attacks
    trainer.mask_grid(2, tmp_path / "grid.png")
    (panels, _), = captured_panels
    x, y, _ = trainer.outputs.grid_images
    with trainer.streams.fork("grid", 2):
        cam = compute_cam(model, x, "gradcam")
        eps = epsilon_map(PartSettings.from_args(args), cam, x)       # the official rule
        start = {"uniform": uniform_start, "uniform_clipped": uniform_clipped_start, "normal": normal_start}[start]
        attack = {"pgd": pgd, "mma": mma, "trades": trades}[attack]
        with eval_mode(model):
            x_adv = attack(model, x, y, eps, args.step_size, 3, start=start, start_epsilon=args.epsilon)
    np.testing.assert_array_equal(panels["perturbation"], grid_panels(x, cam, eps, x_adv - x)["perturbation"])


def test_report_fills_settings_older_results_lack(tmp_path):
    """A results file written before --awp-gamma existed pairs with a newer one that left it at 0."""
    old = _fake_run(tmp_path, "part_old", "PART", ["--seed", "1"], 80.0)
    new = _fake_run(tmp_path, "at_new", "AT", ["--seed", "1"], 75.0)
    run = json.loads(Path(old).read_text())
    for key in ("awp_gamma", "awp_warmup"):
        del run["args"][key]
    Path(old).write_text(json.dumps(run))
    runs = groups.load_runs([old, new])
    assert groups.baseline_of(runs[0], runs)["name"] == "at_new"
    Path(new).write_text(Path(new).read_text().replace('"awp_gamma": 0.0', '"awp_gamma": 0.005'))
    runs = groups.load_runs([old, new])
    assert groups.baseline_of(runs[0], runs) is None


def test_a_result_older_than_a_registry_flag_groups_with_newer_ones():
    """A results file written before a mask rule's or AWP's flag existed lacks its key: the
    report fills it with the flag's default ("not given" / "off"), so the old run still groups and
    pairs with runs that leave the flag alone."""
    from cam.rules import RULES
    from runner.cli.args import get_args
    from report.groups import group_key
    new = vars(get_args("part", []))
    # The mask rules' own flags (the one registry with flags), and AWP's, declared in runner/cli/settings.py.
    flags = [(f.name, f.dest) for rule in RULES.values() for f in rule.flags]
    assert len(flags) >= 3                  # --top-share, --region-eps, --region-start, --random-share
    flags += [("--awp-gamma", "awp_gamma"), ("--awp-warmup", "awp_warmup")]
    for name, dest in flags:
        assert dest in new, name
        old = {k: v for k, v in new.items() if k != dest}
        assert group_key({"method": "part", "args": old}) == group_key({"method": "part", "args": new}), name
        # ... while the flag is a setting: another value is another group.
        other = {**new, dest: "another value"}
        assert group_key({"method": "part", "args": other}) != group_key({"method": "part", "args": new}), name


def test_report_labels_show_budgets_as_the_command_line_takes_them():
    """An arm's label gives budgets in 255ths and quadrants in the paper's order, shares as they are."""
    quadrants = {"br": 12 / 255, "bl": 12 / 255, "ul": 6 / 255, "ur": 12 / 255}
    assert groups._value_text("region_eps", quadrants) == "ul=6/255,ur=12/255,bl=12/255,br=12/255"
    assert groups._value_text("low_epsilon", 0.028304313725490197) == "7.2176/255"
    assert groups._value_text("top_share", 0.2176) == "0.2176"
