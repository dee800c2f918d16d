"""The paths built for the GPU, checked on the CPU: bf16 autocast (a step and a whole run), the
static-buffer (graph-ready) attack, the graph check's stop, channels_last, the AutoAttack subset.
tests/runner/test_cuda.py checks the same on CUDA."""
import functools

import pytest
import torch
import torch.nn.functional as F

from models.zoo import Autocast
from part import PartSettings
from part.step import ATTACKS, BASE_METHODS, attack_of, objective_of, phase
from tests.conftest import tiny_argv, train, trained_a_little
from tests.helpers.compare import weights
from runner.cli.args import get_args
from runner.training.graphs import GraphedAttack


def test_bf16_training_step_close_to_fp32():
    """One PART training step under bf16 autocast on the CPU against fp32, on a barely trained
    BatchNorm CNN (small, noisy gradients; a ResNet-18 took 19 s here, where the CPU emulates bf16).
    Stated tolerances: the PGD-3 attack leaves at least 80% of the elements identical (the rest are
    sign flips of tiny gradients); given the same adversarial batch, the loss is within 1% and the
    weight gradient within cosine 0.9."""
    model = trained_a_little("smallcnn-bn").train()
    part = phase("part", PartSettings.from_args(get_args("part", ["--num-steps", "3"])), BASE_METHODS["at"], reweighted=True)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    eps = torch.where(torch.rand_like(x) > 0.5, 8 / 255, 7 / 255).float()
    advs = []
    for m in (model, Autocast(model)):
        torch.manual_seed(1)
        advs.append(attack_of(part)(m, x, y, eps))
    same = float(((advs[0] - advs[1]).abs() < 1e-6).float().mean())
    assert 0.8 <= same < 1.0                     # < 1: autocast really ran in bf16
    steps = []
    for m in (model, Autocast(model)):
        model.zero_grad()
        loss = objective_of(part)(m, x, advs[0], y)
        loss.backward()
        assert loss.dtype == torch.float32
        steps.append((loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (l32, g32), (l16, g16) = steps
    assert l16 == pytest.approx(l32, rel=0.01)
    assert F.cosine_similarity(g32, g16, dim=0) > 0.9


@pytest.mark.parametrize("method,base,part_phase", [("part", "at", True), ("part", "at", False),
                                                    ("part_t", "trades", True), ("part_m", "mart", True)])
def test_static_buffer_attack_equals_the_attack(method, base, part_phase):
    """The path that CUDA captures (copy into static buffers, attack them, copy out), run eagerly,
    is the plain attack bit for bit, batch after batch; other batch sizes pass through."""
    model = trained_a_little("resnet").train()
    plain = phase("part" if part_phase else "warm-up", PartSettings.from_args(get_args(method, ["--num-steps", "2"])),
                  BASE_METHODS[base], reweighted=part_phase)
    graph = GraphedAttack(4, capture=False)
    static = functools.partial(graph, ATTACKS[plain.attack], **plain.attack_settings)   # as train_batch calls it
    for seed in (1, 2):
        x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
        eps = torch.where(torch.rand_like(x) > 0.5, 8 / 255, 7 / 255).float()
        for budget in (eps, 8 / 255):
            torch.manual_seed(seed)
            a = attack_of(plain)(model, x, y, budget)
            torch.manual_seed(seed)
            b = static(model, x, y, budget)
            assert torch.equal(a, b) and model.training
    assert len(graph.slots) == 2                       # one per budget kind
    torch.manual_seed(3)
    a = attack_of(plain)(model, x[:3], y[:3], 8 / 255)
    torch.manual_seed(3)
    assert torch.equal(a, static(model, x[:3], y[:3], 8 / 255)) and len(graph.slots) == 2


def test_aa_subset(tiny_folder, tmp_path):
    res = train(tiny_folder, tmp_path, "--epochs", "1", "--warm-up", "1", "--eval", "natural,aa", "--aa-subset", "6")
    assert res["test_images"] == 40 and res["images"] == {"natural": 40, "aa": 6}
    assert res["counts"]["aa"] == round(res["aa"] * 6 / 100) and res["args"]["aa_subset"] == 6


def test_graph_check_stops_on_disagreement():
    """The check of a graph's first replay (on CUDA; the arithmetic is device-free): equal results pass,
    results that differ on more than GRAPH_TOLERANCE of the elements stop the run naming --no-cuda-graphs,
    a difference within the tolerance (sign flips of near-zero gradients) passes."""
    from common.errors import UserError
    from runner.training.graphs import GRAPH_TOLERANCE, agreement
    eager = torch.rand(10_000)
    assert agreement(eager.clone(), eager) == 1.0
    few = eager.clone()
    few[: int(0.5 * GRAPH_TOLERANCE * len(eager))] += 1e-3
    assert agreement(few, eager) == pytest.approx(1 - 0.5 * GRAPH_TOLERANCE)
    many = eager.clone()
    many[: int(2 * GRAPH_TOLERANCE * len(eager))] += 1e-3
    with pytest.raises(UserError, match="--no-cuda-graphs"):
        agreement(many, eager)


def test_bf16_training_run_on_the_cpu(tiny_folder, tmp_path):
    """A whole run under --precision bf16 (autocast on the CPU): it trains, its weights stay fp32 and
    finite, and they differ from the fp32 run's (autocast really ran)."""
    runs = {p: train(tiny_folder, tmp_path / p, "--model", "smallcnn-bn", "--precision", p, "--eval", "natural")
            for p in ("fp32", "bf16")}
    assert runs["bf16"]["args"]["precision"] == "bf16" and runs["bf16"]["epochs_done"] == 2
    w = {p: weights(tmp_path / p / "epoch2.pt") for p in runs}
    assert all(v.dtype != torch.bfloat16 and torch.isfinite(v.float()).all() for v in w["bf16"].values())
    assert any(not torch.equal(w["fp32"][k], w["bf16"][k]) for k in w["fp32"])


def test_channels_last_trains_like_nchw(tiny_folder, tmp_path):
    """--channels-last changes the memory format of the model (and so the convolution kernels), not the
    arithmetic's result beyond rounding: its weights agree with the NCHW run's."""
    from runner.training.run import prepare
    args = get_args("part", tiny_argv(tiny_folder, tmp_path / "p", "--model", "smallcnn-bn", "--channels-last"))
    trainer = prepare(args)[0]
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for fmt in ("nchw", "cl"):
        train(tiny_folder, tmp_path / fmt, "--model", "smallcnn-bn", "--epochs", "1", "--warm-up", "1",
              "--eval", "natural", *(["--channels-last"] if fmt == "cl" else []))
    a, b = (weights(tmp_path / f / "epoch1.pt") for f in ("nchw", "cl"))
    # Rounding drift over an epoch: about 2e-5 at weights of scale 0.06-1 here (2 threads).
    for k in a:
        assert (a[k].float() - b[k].float()).abs().max() <= 1e-3 * a[k].float().abs().max() + 1e-5, k
