"""The one GPU check command's CPU rehearsal (--dry-run): every step runs or says why not, the report
and the pair's results are written, and the budget is kept."""
import json

import pytest
import torch

from bench import gpu_check


def test_dry_run_writes_the_report_and_the_pair(tiny_folder, tmp_path):
    out = tmp_path / "out"
    assert gpu_check.main(["--dry-run", "--data-dir", str(tiny_folder), "--out", str(out),
                           "--checkpoint-dir", str(tmp_path / "ck")]) == 0
    report = (out / "report.md").read_text()
    if not torch.cuda.is_available():
        assert "| CUDA test tier | skipped: no CUDA device" in report
    assert "| AT epoch | fp32 |" in report and "| PART epoch | fp32 |" in report and "| × floor |" in report
    assert "bf16: not timed in the dry run" in report
    assert "| PGD-20 evaluation | " in report and "| PGD-20 eval | fp32 |" in report
    assert "| AT + PART pair | 2 of 2 runs finished (2 epochs each) |" in report
    for run, reweight in (("at", False), ("part", True)):
        res = json.loads((out / f"{run}.json").read_text())
        assert res["epochs_done"] == 2 and res["args"]["no_reweight"] is not reweight
        assert res["images"]["aa"] == gpu_check.DRY.aa_subset and res["aa"] is not None
        assert f"| {run.upper()} | finished | 2 |" in report
    assert not list(out.rglob("*.pt"))          # weights stay in --checkpoint-dir


def test_a_spent_budget_skips_every_step_and_says_so(tiny_folder, tmp_path):
    out = tmp_path / "out"
    assert gpu_check.main(["--dry-run", "--data-dir", str(tiny_folder), "--out", str(out), "--budget", "6",
                           "--checkpoint-dir", str(tmp_path / "ck")]) == 0
    report = (out / "report.md").read_text()
    assert "| bench rows | skipped: the budget left cannot hold an epoch |" in report
    assert "| PGD-20 evaluation | skipped: no model from the bench step |" in report
    assert "| AT + PART pair | skipped: no fp32 epoch times" in report
    assert not (out / "at.json").exists()


def test_the_pair_is_planned_to_fit_what_is_left():
    times = {"AT epoch": 10.0, "PART epoch": 12.0}
    full = gpu_check.FULL
    epochs = gpu_check.plan_pair(300, full, times, 20)
    assert epochs >= 2
    # Both runs (start, epochs of the slower method, evaluation) inside the time, with the margin.
    assert 2 * (full.run_start_s + epochs * 12.0 + 20) * 1.2 <= 300
    assert 2 * (full.run_start_s + (epochs + 1) * 12.0 + 20) * 1.2 > 300
    assert gpu_check.plan_pair(100, full, times, 20) == 0
    assert gpu_check.plan_pair(10_000, full, times, 20) == full.max_pair_epochs


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_only_the_dry_run_runs(tiny_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--data-dir", str(tiny_folder), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2 and "--dry-run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
