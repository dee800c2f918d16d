"""Models in and out of RobustBench, checked with robustbench's own code (robustbench 1.1.1, offline): an
exported checkpoint loads through robustbench.utils.load_model with our logits; a zoo model is evaluated by
our --eval-only with the counts of our evaluation of the same weights; mistakes are one line."""
import hashlib
import json
import os

import pytest
import torch

pytest.importorskip("robustbench", reason="the [robustbench] extra is not installed")

import exchange.eval_only  # noqa: F401  (as the scripts: registers --eval-only robustbench:NAME)
from exchange.robustbench import cam_layer_of, check_zoo_model, import_robustbench, load_zoo_model, zoo_file
from models.zoo import build_model
from runner.cli.args import get_args
from common.errors import UserError
from runner.main import main

# A ResNet-18 entry of RobustBench's CIFAR-10 L-inf zoo (its definition: robustbench's ResNet18). Its
# load_model loads only names of its zoo, so a model of ours is loaded under this one's name here.
R18 = "Sehwag2021Proxy_R18"


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(3)
    model = build_model("resnet", 10)
    with torch.no_grad():                 # BatchNorm statistics not those of a fresh init
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def ours(tmp_path, model, results: dict | None = None):
    """One of our checkpoints of `model` and its run's results JSON beside it."""
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": model.state_dict(), "args": {"model": "resnet", "data": "CIFAR10"}, "epoch": 80},
               run / "epoch80.pt")
    (run / "results.json").write_text(json.dumps(results or {
        "method": "PART", "script": "train_eval_part.py", "natural": 41.5, "pgd20": 25.25, "aa-standard": 21.4,
        "images": {"natural": 2000, "pgd20": 2000, "aa-standard": 500},
        "counts": {"natural": 830, "pgd20": 505, "aa-standard": 107}, "args": {"model": "resnet", "epochs": 10},
        "data": {"layout": "zip", "train_images": 10000, "test_images": 2000}, "git_commit": "abc1234"}))
    return run / "epoch80.pt"


def test_an_export_loads_through_robustbench_with_our_logits(resnet, tmp_path):
    from exchange.export import export
    paths = export(ours(tmp_path, resnet), R18, tmp_path / "models", authors="A. Author")
    assert [p.name for p in paths] == [f"{R18}.pt", f"{R18}.json", f"{R18}.md"]
    assert paths[0] == zoo_file(R18, tmp_path / "models")
    robustbench = import_robustbench()
    theirs = robustbench.utils.load_model(R18, model_dir=str(tmp_path / "models"), dataset="cifar10",
                                          threat_model="Linf")
    assert type(theirs).__module__.startswith("robustbench")
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(theirs(x), resnet(x), atol=1e-5, rtol=0)
    info = json.loads(paths[1].read_text())
    assert info["clean_acc"] == "41.50" and info["autoattack_acc"] == "21.40" and info["eps"] == "8/255"
    assert "on 2000 of the 10,000" in info["footnote"] and "AutoAttack accuracy on 500" in info["footnote"]
    card = paths[2].read_text()
    assert "| AutoAttack (the authors', standard) | 21.40 | 107 of 500 |" in card and "Not measured: MMA" in card
    assert "abc1234" in card and "python train_eval_part.py" in card


def test_a_zoo_model_is_evaluated_as_our_checkpoint_of_the_same_weights(resnet, tiny_folder, tmp_path, monkeypatch):
    zoo = zoo_file(R18, tmp_path / "zoo")
    zoo.parent.mkdir(parents=True)
    torch.save(resnet.state_dict(), zoo)                       # as RobustBench ships a model: its state dict
    mine = ours(tmp_path, resnet)
    common = ["--data-dir", str(tiny_folder), "--no-download", "--test-subset", "8", "--eval", "natural,pgd20",
              "--batch-size", "4", "--threads", "1", "--no-progress"]
    assert main("part", ["--eval-only", f"robustbench:{R18}", "--zoo-dir", str(tmp_path / "zoo"),
                         "--results", str(tmp_path / "zoo.json"), *common]) == 0
    assert main("part", ["--eval-only", str(mine), "--results", str(tmp_path / "ours.json"), *common]) == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("zoo.json", "ours.json"))
    assert a["counts"] == b["counts"] and a["images"] == b["images"] == {"natural": 8, "pgd20": 8}
    assert a["model"]["sha256"] == hashlib.sha256(zoo.read_bytes()).hexdigest()
    assert a["model"]["robustbench"] == "1.1.1" and a["model"]["architecture"] == "ResNet"
    assert a["model"]["name"] == R18 and a["method"] == f"RobustBench {R18}" and "model" not in a["args"]
    # The model our evaluation ran is robustbench's, with our logits (the counts alone are near chance here).
    model, record = load_zoo_model(R18, tmp_path / "zoo", download=False)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), resnet(x), atol=1e-5, rtol=0)
    assert record["cam_layer"] == "layer4" and not model.training
    # A zoo file as RobustBench ships many, a dict around the state dict, loads too; --cam-layer is honoured.
    torch.save({"state_dict": resnet.state_dict(), "epoch": 3}, zoo)
    assert load_zoo_model(R18, tmp_path / "zoo", download=False, cam_layer="layer3")[1]["cam_layer"] == "layer3"
    with pytest.raises(UserError, match="has no layer 'layer9'"):
        load_zoo_model(R18, tmp_path / "zoo", download=False, cam_layer="layer9")
    # An earlier evaluation's results are not overwritten, and nothing is loaded to find that out.
    import exchange.evaluate as run
    loads = []
    monkeypatch.setattr(run, "load_zoo_model", lambda *a, **k: loads.append(a) or load_zoo_model(*a, **k))
    assert main("part", ["--eval-only", f"robustbench:{R18}", "--zoo-dir", str(tmp_path / "zoo"),
                         "--results", str(tmp_path / "zoo.json"), *common]) == 2
    assert loads == []
    assert main("part", ["--eval-only", f"robustbench:{R18}", "--zoo-dir", str(tmp_path / "zoo"), "--overwrite",
                         "--results", str(tmp_path / "zoo.json"), "--data-dir", str(tiny_folder), "--no-download",
                         "--test-subset", "8", "--eval", "natural", "--threads", "1", "--no-progress"]) == 0
    assert len(loads) == 1


def test_robustbench_wideresnet_loads_ours_strictly():
    """WRN-34-10: RobustBench's definition (the zoo's Zhang2019Theoretically, TRADES) takes our state dict
    strictly, with our logits."""
    from exchange.robustbench import zoo_entries
    torch.manual_seed(4)
    mine = build_model("wideresnet", 10).eval()
    theirs = zoo_entries()["Zhang2019Theoretically"]["model"]().eval()
    theirs.load_state_dict(mine.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(theirs(x), mine(x), atol=1e-5, rtol=0)


def test_zoo_architectures_find_their_cam_layer_and_ensembles_are_refused(tmp_path, capsys):
    """The zoo's own subclasses (Rice2020OverfittingNet, ...) find the layer of their base class; an
    ensemble (several files) is refused in one line; native CAMs become the grad-cam package's."""
    import_robustbench()
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet

    class ZooNet(WideResNet):
        pass
    assert cam_layer_of(ZooNet(depth=10, widen_factor=1)) == "block3"
    assert cam_layer_of(torch.nn.Linear(2, 2)) is None
    with pytest.raises(UserError, match="an ensemble of"):
        check_zoo_model("Chen2020Adversarial", tmp_path, download=False)
    assert get_args("part", ["--eval-only", f"robustbench:{R18}"]).cam == "lib-gradcam"
    with pytest.raises(SystemExit):
        get_args("part", ["--eval-only", f"robustbench:{R18}", "--map", "gradcam"])
    assert "--map lib-gradcam" in capsys.readouterr().err


class _System:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-system",))


def _one_line_refusal(capsys, argv: list[str], message: str, tmp_path) -> None:
    try:
        code = main("part", argv)
    except SystemExit as exc:          # a mistake of the command line itself: the parser's exit
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_zoo_mistakes_are_one_line(tiny_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--data-dir", str(tiny_folder), "--no-download", "--zoo-dir", str(tmp_path / "zoo")]
    _one_line_refusal(capsys, ["--eval-only", "robustbench:Sehwag2021Proxy_R19", *common], "did you mean", tmp_path)
    _one_line_refusal(capsys, ["--eval-only", f"robustbench:{R18}", *common], "is missing (--no-download", tmp_path)
    path = zoo_file(R18, tmp_path / "zoo")
    path.parent.mkdir(parents=True)
    torch.save(build_model("smallcnn-bn", 10).state_dict(), path)         # another architecture under its name
    _one_line_refusal(capsys, ["--eval-only", f"robustbench:{R18}", *common], "does not fit", tmp_path)
    torch.save(build_model("resnet", 100).state_dict(), path)             # a ResNet-18 of another dataset
    _one_line_refusal(capsys, ["--eval-only", f"robustbench:{R18}", *common], "does not fit", tmp_path)
    torch.save({"state_dict": _System()}, path)                            # a pickle that runs code
    _one_line_refusal(capsys, ["--eval-only", f"robustbench:{R18}", *common], "needs posix.system to unpickle",
                      tmp_path)
    assert not (tmp_path / "pwned-by-system").exists()
    _one_line_refusal(capsys, ["--eval-only", f"robustbench:{R18}", "--data", "SVHN", *common], "CIFAR-10's", tmp_path)


def test_export_mistakes_are_one_line(resnet, tmp_path, capsys):
    from exchange.export import main as export_main
    bare = tmp_path / "bare.pt"
    torch.save(resnet.state_dict(), bare)
    mine = ours(tmp_path, resnet, {"epochs_done": 40, "natural": 40.0, "images": {"natural": 10000}})
    for argv, message in ((["--name", "x y", str(bare)], "letters, digits"),
                          (["--name", "Mine", str(bare)], "bare state dict"),
                          (["--name", "Mine", str(tmp_path / "none.pt")], "cannot read checkpoint"),
                          (["--name", "Mine", str(mine)], "holds the accuracies of epoch 40")):
        assert export_main([*argv, "--out", str(tmp_path / "models")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "models").exists()
    (tmp_path / "run" / "results.json").write_text(json.dumps({"epochs_done": 80, "natural": 40.0}))
    assert export_main(["--name", "Mine", str(mine), "--out", str(tmp_path / "models")]) == 0
    assert export_main(["--name", "Mine", str(mine), "--out", str(tmp_path / "models")]) == 2
    assert "add --overwrite" in capsys.readouterr().err
    assert export_main(["--name", "Mine", str(mine), "--out", str(tmp_path / "models"), "--overwrite"]) == 0
