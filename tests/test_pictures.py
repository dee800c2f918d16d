"""Mask grids, periodic evaluation and the report command."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import utils.train
from tests.conftest import train
from utils import report
from utils.checkpoint import load_checkpoint


@pytest.fixture
def captured_panels(monkeypatch):
    seen = []
    real = utils.train.save_mask_grid

    def spy(panels, path, title=""):
        seen.append((panels, path))
        real(panels, path, title)
    monkeypatch.setattr(utils.train, "save_mask_grid", spy)
    return seen


@pytest.mark.parametrize("rule,extra,values", [
    ("official", [], {7, 8}), ("cam", [], {7, 8}),
    ("region", ["--region-eps", "ul=6/255,ur=12/255,bl=12/255,br=12/255"], {6, 12}),
])
def test_mask_grids(tiny_folder, tmp_path, captured_panels, rule, extra, values):
    train(tiny_folder, tmp_path, "--save-masks", "3", "--mask-rule", rule, *extra, "--eval", "natural")
    assert sorted(p.name for p in tmp_path.glob("masks_epoch*.png")) == ["masks_epoch1.png", "masks_epoch2.png"]
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


def test_report_matches_its_json(tiny_folder, tmp_path):
    base = train(tiny_folder, tmp_path / "at", "--no-reweight", "--eval-every", "1", "--eval-subset", "8",
                 "--results", str(tmp_path / "at.json"))
    part = train(tiny_folder, tmp_path / "part", "--eval-every", "1", "--eval-subset", "8",
                 "--results", str(tmp_path / "part.json"))
    out = tmp_path / "report"
    assert report.main([str(tmp_path / "at.json"), str(tmp_path / "part.json"), "-o", str(out)]) == 0
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in (out / "table.md").read_text().splitlines()[2:] if line.startswith("| ")}
    assert rows["part"][1] == "PART" and rows["at"][1] == "AT" and rows["part"][8] == "at"
    assert float(rows["part"][4]) == pytest.approx(part["natural"], abs=0.005)
    assert float(rows["at"][5]) == pytest.approx(base["pgd20"], abs=0.005)
    assert float(rows["part"][9]) == pytest.approx(part["natural"] - base["natural"], abs=0.006)
    assert float(rows["part"][10]) == pytest.approx(part["pgd20"] - base["pgd20"], abs=0.006)
    assert rows["at"][8] == "–"
    for name in ("tradeoff.png", "curves_at.png", "curves_part.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300


def test_report_seed_summary_and_bad_input(tmp_path):
    def fake(name, seed, nat):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"method": "PART", "args": {"seed": seed}, "natural": nat, "pgd20": 40.0,
                                    "mma": None, "aa": None, "history": [], "epochs_done": 1}))
        return str(path)
    table = report.markdown_table(report.load_runs([fake("s1", 1, 80.0), fake("s2", 2, 82.0)]))
    assert "| PART | 2 | 81.00 ± 1.41 | 40.00 ± 0.00 | – | – |" in table
    (tmp_path / "bad.json").write_text("{")
    assert report.main([str(tmp_path / "bad.json"), "-o", str(tmp_path / "o")]) == 2
