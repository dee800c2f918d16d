"""The reproduction runner: writes results and logs, skips finished runs, resumes interrupted ones."""
import json

import pytest

from experiments import run as runner
from experiments.runs import RUNS

TINY = "--model smallcnn --batch-size 32 --num-steps 1 --warm-up 1 --eval natural --eval-subset 8 --save-masks 0 --no-download"


def test_named_runs_cover_the_priorities():
    assert {p for p, _, _ in RUNS.values()} == {1, 2, 3, 4}
    assert {n for n, (p, _, _) in RUNS.items() if p == 1} == {"at_seed1", "part_seed1", "part_official_pairing_seed1"}
    assert "--no-reweight" in RUNS["trades_seed1"][2] and RUNS["part_m_seed1"][1] == "train_eval_part_m.py"


def test_runs_skip_and_resume(tiny_folder, tmp_path, capsys):
    common = ["--data-dir", str(tiny_folder), "--results-dir", str(tmp_path / "res"),
              "--checkpoint-dir", str(tmp_path / "ckpt")]
    # An interrupted run: one epoch done, no results yet.
    assert runner.main(["at_seed1", *common, "--extra", TINY + " --epochs 1"]) == 0
    (tmp_path / "res" / "at_seed1.json").unlink()
    assert runner.main(["at_seed1", *common, "--extra", TINY + " --epochs 2"]) == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "epoch1.pt" in out
    res = json.loads((tmp_path / "res" / "at_seed1.json").read_text())
    assert res["method"] == "AT" and res["epochs_done"] == 2 and len(res["history"]) == 2
    assert "resumed from" in (tmp_path / "res" / "at_seed1.log").read_text()
    assert runner.main(["at_seed1", *common, "--extra", TINY]) == 0
    assert "results exist, skipped" in capsys.readouterr().out


def test_unknown_run_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        runner.main(["no_such_run"])
    assert exc.value.code == 2 and "unknown run no_such_run" in capsys.readouterr().err
