"""`python -m exchange.export` with results that are not the checkpoint's run's, or not a results JSON:
one line, exit 2, nothing written."""
import json

import pytest
import torch

from exchange.export import main as export_main

PART = {"method": "part", "model": "resnet", "seed": 1, "data": "CIFAR10"}


def checkpoint(tmp_path, **top):
    """A checkpoint of ours as the export reads it (weights, the run's settings, the epoch)."""
    path = tmp_path / "run" / "epoch80.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.zeros(2)}, "args": dict(PART), "epoch": 80, **top}, path)
    return path


def results(path, method="PART", natural=60.0, args=(), **top):
    path.write_text(json.dumps({"method": method, "script": "train_eval_part.py", "epochs_done": 80,
                                "natural": natural, "args": {**PART, "model_dir": str(path.parent), **dict(args)},
                                "data": {"layout": "zip", "sha256": "a" * 64}, **top}))
    return str(path)


def refused(capsys, argv, *words):
    capsys.readouterr()
    assert export_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("mine,theirs,word", [
    ({}, {"method": "PART-T", "natural": 55.0, "args": {"method": "part_t"}}, "method part in the checkpoint, part_t"),
    ({}, {"args": {"seed": 2}}, "seed 1 in the checkpoint, 2 in the results"),
    ({}, {"args": {"model": "wideresnet"}}, "model resnet in the checkpoint, wideresnet"),
    ({"run_id": "run-a"}, {"run_id": "run-b"}, "run_id run-a in the checkpoint, run-b"),
    ({"data": {"sha256": "b" * 64}}, {}, "data sha256"),
])
def test_export_pairs_a_checkpoint_only_with_its_own_runs_results(tmp_path, capsys, mine, theirs, word):
    ckpt = checkpoint(tmp_path, **mine)
    other = results(tmp_path / "other.json", **theirs)
    out = tmp_path / "models"
    refused(capsys, [str(ckpt), "--name", "Mine", "--out", str(out), "--results", other], other, str(ckpt), word)
    assert not out.exists()
    own = results(tmp_path / "run" / "results.json", natural=61.25, **mine)      # the run's own: exported
    assert export_main([str(ckpt), "--name", "Mine", "--out", str(out), "--results", own]) == 0
    assert json.loads((out / "cifar10" / "Linf" / "Mine.json").read_text())["clean_acc"] == "61.25"


def test_an_eval_only_of_the_checkpoint_pairs_by_model_and_data(tmp_path, capsys):
    """An --eval-only records its own command's method and seed: the model and data it took from the
    checkpoint are compared, and the run_id, its checkpoint's."""
    ckpt = checkpoint(tmp_path, run_id="run-a")
    other = results(tmp_path / "wrn.eval.json", args={"eval_only": "wrn/epoch80.pt", "model": "wideresnet"})
    refused(capsys, [str(ckpt), "--name", "Mine", "--out", str(tmp_path / "m"), "--results", other], "model resnet")
    own = results(tmp_path / "run" / "epoch80.eval.json", method="PART-T",
                  args={"eval_only": str(ckpt), "seed": 7, "method": "part_t"}, run_id="run-a")
    assert export_main([str(ckpt), "--name", "Mine", "--out", str(tmp_path / "m"), "--results", own]) == 0


@pytest.mark.parametrize("text", ["[1, 2]", '"PART"', "3", "null", '{"epochs_done": 80, "args": [1]}'])
def test_results_that_are_not_a_json_object_are_one_line(tmp_path, capsys, text):
    ckpt = checkpoint(tmp_path)
    (tmp_path / "run" / "results.json").write_text(text)
    refused(capsys, [str(ckpt), "--name", "Mine", "--out", str(tmp_path / "m")],
            str(tmp_path / "run" / "results.json"), "--results")
    assert not (tmp_path / "m").exists()
