"""--eval-only CKPT with nothing else: the model, data and subsets from the checkpoint, the results
beside it (never over the training run's), on a CPU what finishes in minutes; every flag still wins."""
import json

import pytest

from tests.conftest import TINY_MODEL, tiny_argv
from runner.main import main


@pytest.fixture(scope="module")
def trained(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    assert main("part", tiny_argv(tiny_folder, out, "--epochs", "1", "--eval", "natural,pgd20", "--test-subset", "30",
                                  "--num-steps", "1")) == 0
    return out


def test_eval_only_with_nothing_else(trained, capsys):
    ckpt = trained / "epoch1.pt"
    before = (trained / "results.json").read_bytes()
    assert main("part", ["--eval-only", str(ckpt), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"--eval-only: from the checkpoint --model {TINY_MODEL}," in out and "--test-subset 30" in out
    assert "--eval-only on the CPU: natural, pgd20 on 30 fixed test images" in out
    res = json.loads((trained / "epoch1.eval.json").read_text())
    train = json.loads(before)
    assert (trained / "results.json").read_bytes() == before                      # not written over
    assert res["args"]["model"] == TINY_MODEL and res["test_images"] == 30
    assert res["counts"]["natural"] == train["counts"]["natural"]                  # the same weights, images
    assert set(res["counts"]) == {"natural", "pgd20"}
    # Again: refused (its own results exist) in one line, unless --overwrite.
    assert main("part", ["--eval-only", str(ckpt), "--no-progress"]) == 2
    assert "epoch1.eval.json" in capsys.readouterr().err
    assert main("part", ["--eval-only", str(ckpt), "--no-progress", "--overwrite"]) == 0


def test_flags_still_win(trained, tiny_folder, tmp_path, capsys):
    ckpt = trained / "epoch1.pt"
    assert main("part", ["--eval-only", str(ckpt), "--eval", "natural", "--test-subset", "12", "--no-progress",
                         "--results", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert set(res["counts"]) == {"natural"} and res["test_images"] == 12
    assert "on the CPU" not in capsys.readouterr().out
    # A flag the checkpoint contradicts is the user's: the network does not fit, one line.
    assert main("part", ["--eval-only", str(ckpt), "--model", "resnet", "--results", str(tmp_path / "x.json")]) == 2
    assert "does not fit --model resnet" in capsys.readouterr().err
