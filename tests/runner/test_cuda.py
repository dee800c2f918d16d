"""The CUDA tier: what CI (no GPU) cannot check. Skipped without CUDA; on a lent GPU run it first:
`python -m pytest -m cuda`."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cam.rules import epsilon_map
from part import PartSettings
from part.step import ATTACKS, BASE_METHODS, phase
from tests.conftest import FIXTURE, train, trained_a_little
from runner.cli.args import get_args
from runner.data.loaders import ArraySplit, ResidentLoader, make_loader
from runner.data.sources import load_splits
from runner.infra.checkpoint import load_checkpoint
from runner.training.graphs import GraphedAttack, _Captured

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
CUDA = torch.device("cuda")


def test_resume_on_cuda_and_across_devices(tiny_folder, tmp_path):
    common = ("--warm-up", "1", "--save-freq", "1", "--eval", "natural", "--device", "cuda")
    straight = train(tiny_folder, tmp_path / "a", "--epochs", "2", *common)
    train(tiny_folder, tmp_path / "b", "--epochs", "1", *common)
    resumed = train(tiny_folder, tmp_path / "c", "--epochs", "2", *common, "--resume", str(tmp_path / "b" / "epoch1.pt"))
    assert resumed["epochs_done"] == 2 and len(resumed["history"]) == 2
    assert resumed["history"][0]["loss"] == straight["history"][0]["loss"]
    # A CUDA checkpoint resumed on the CPU, and that one back on CUDA.
    cpu = train(tiny_folder, tmp_path / "d", "--epochs", "2", "--warm-up", "1", "--save-freq", "1", "--eval", "natural",
                "--device", "cpu", "--resume", str(tmp_path / "b" / "epoch1.pt"))
    assert cpu["epochs_done"] == 2
    back = train(tiny_folder, tmp_path / "e", "--epochs", "3", *common, "--resume", str(tmp_path / "d" / "epoch2.pt"))
    assert back["epochs_done"] == 3


def _model():
    return trained_a_little("resnet").to(CUDA).train()


@pytest.mark.parametrize("method,base", [("part", "at"), ("part_t", "trades"), ("part_m", "mart")])
def test_graph_equals_eager(method, base):
    model = _model()
    plain = phase("part", PartSettings.from_args(get_args(method, [])), BASE_METHODS[base], reweighted=True)
    graphed = GraphedAttack(64, capture=True)
    for seed in range(3):
        torch.manual_seed(seed)
        x, y = torch.rand(64, 3, 32, 32, device=CUDA), torch.randint(0, 10, (64,), device=CUDA)
        eps = torch.where(torch.rand_like(x) > 0.5, 8 / 255, 7 / 255).float()
        out = graphed(ATTACKS[plain.attack], model, x, y, eps, **plain.attack_settings)   # the first checks itself
        assert (out - x).abs().max() <= 8 / 255 + 1e-6 and model.training
    assert graphed.agreement is not None and graphed.agreement >= 0.99


def test_a_graph_that_disagrees_with_eager_stops_the_run():
    """Inject a mismatch: an attack whose eager result changes after capture (a Python scale baked into
    the graph at 1, then 2) must stop at the first replay's check with the --no-cuda-graphs hint."""
    from common.errors import UserError
    scale = {"now": 1.0}
    def attack(model, x, y, eps):
        return x * scale["now"]
    graphed = GraphedAttack(8, capture=True)
    x, y = torch.rand(8, 3, 4, 4, device=CUDA), torch.zeros(8, dtype=torch.long, device=CUDA)
    graphed._record(attack, None, graphed.slots.setdefault(graphed._key(x, 0.0), _Captured(x, y, 0.0)))
    scale["now"] = 2.0
    with pytest.raises(UserError, match="--no-cuda-graphs"):
        graphed(attack, None, x, y, 0.0)


def test_training_with_and_without_graphs(tiny_folder, tmp_path):
    for flag in ([], ["--no-cuda-graphs"]):
        res = train(tiny_folder, tmp_path / str(len(flag)), "--device", "cuda", "--eval", "natural,pgd20", *flag)
        assert res["epochs_done"] == 2 and res["args"]["loader"] == "resident"


def test_bf16_close_to_fp32_on_cuda(tiny_folder, tmp_path):
    runs = {p: train(tiny_folder, tmp_path / p, "--device", "cuda", "--precision", p, "--eval", "natural")
            for p in ("fp32", "bf16")}
    for a, b in zip(runs["fp32"]["history"], runs["bf16"]["history"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.02)


def test_resident_loader_on_cuda(tiny_folder):
    train_split, _ = load_splits("CIFAR10", tiny_folder, download=False)
    resident = ResidentLoader(train_split, 32, 5, False, CUDA)
    for (a, la), (b, lb) in zip(make_loader(ArraySplit(train_split), 32, 5), resident):
        assert b.device.type == "cuda" and torch.equal(a, b.cpu()) and torch.equal(la, lb.cpu())


@pytest.mark.parametrize("case,size", [("r18_cifar", 32), ("wrn_cifar", 32), ("r18_tiny", 64)])
def test_official_rule_on_cuda(case, size):
    ref = np.load(FIXTURE)
    cam = torch.from_numpy(ref[f"{case}_cam"]).to(CUDA)
    s = SimpleNamespace(epsilon=8 / 255, low_epsilon=7 / 255, mask_rule="official", rule_params={})
    eps = epsilon_map(s, cam, torch.zeros(len(cam), 3, size, size, device=CUDA))
    assert np.array_equal(eps.cpu().numpy(), ref[f"{case}_eps"])


def test_evaluation_on_cuda_matches_cpu(tiny_folder, tmp_path):
    """The same checkpoint: natural counts equal; PGD-20 draws its start noise on another device, so
    its count may differ by a few images (stated: at most 5% of them)."""
    train(tiny_folder, tmp_path / "m", "--device", "cpu", "--eval", "natural")
    ckpt = str(tmp_path / "m" / "epoch2.pt")
    ev = {d: train(tiny_folder, tmp_path / d, "--eval-only", ckpt, "--device", d, "--eval", "natural,pgd20")
          for d in ("cpu", "cuda")}
    assert ev["cpu"]["counts"]["natural"] == ev["cuda"]["counts"]["natural"]
    assert abs(ev["cpu"]["counts"]["pgd20"] - ev["cuda"]["counts"]["pgd20"]) <= 0.05 * ev["cpu"]["test_images"]
    assert load_checkpoint(ckpt, CUDA)["model"]["classifier.0.weight"].device.type == "cuda"


def test_sigterm_mid_epoch_and_resume_on_cuda(tiny_folder, tmp_path, monkeypatch):
    """The signal-safe checkpoint with the resident loader and CUDA graphs: a PART epoch stopped after
    a batch continues and finishes (bit equality is a CPU promise; cuDNN may pick other kernels)."""
    from tests.conftest import tiny_argv
    from runner.infra.interrupt import TEST_HOOK
    from runner.main import main
    argv = tiny_argv(tiny_folder, tmp_path, "--batch-size", "16", "--device", "cuda", "--eval", "natural")
    monkeypatch.setenv(TEST_HOOK, "2:2:SIGTERM")
    assert main("part", argv) == 143 and (tmp_path / "epoch2_batch3.pt").exists()
    monkeypatch.delenv(TEST_HOOK)
    assert main("part", argv + ["--resume", "auto"]) == 0
    res = load_checkpoint(tmp_path / "epoch2.pt", torch.device("cpu"))
    assert len(res["history"]) == 2 and res["resumes"][0]["batches"] == 3
    assert not (tmp_path / "epoch2_batch3.pt").exists()


def test_torchrun_one_process_on_cuda_uses_nccl(tiny_folder, tmp_path):
    """The NCCL path of the process group (one GPU: one process; several ranks need several GPUs)."""
    import json
    import os
    import subprocess
    import sys
    from tests.conftest import REPO, tiny_argv
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    # The repository first, then what was there (the GPU machine's carried packages).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                          "train_eval_part.py", *tiny_argv(tiny_folder, tmp_path, "--device", "cuda", "--eval", "natural")],
                         cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["args"]["world_size"] == 1 and res["epochs_done"] == 2
