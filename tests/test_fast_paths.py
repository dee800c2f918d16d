"""The paths built for the GPU, checked on the CPU: bf16 autocast, the static-buffer (graph-ready)
attack, the AutoAttack subset. tests/test_cuda.py checks the same on CUDA."""
import pytest
import torch
import torch.nn.functional as F

from models import Autocast
from tests.conftest import train, trained_a_little
from utils.args import get_args
from utils.graphs import GraphedAttack
from utils.recipe import training_loss


def test_bf16_training_step_close_to_fp32():
    """One PART training step under bf16 autocast on the CPU against fp32, on a barely trained
    BatchNorm CNN (small, noisy gradients; a ResNet-18 took 19 s here, where the CPU emulates bf16). Stated tolerances: the PGD-3 attack leaves at
    least 80% of the elements identical (the rest are sign flips of tiny gradients); given the same
    adversarial batch, the loss is within 1% and the weight gradient within cosine 0.9."""
    model = trained_a_little("smallcnn-bn").train()
    loss_fn = training_loss(get_args("part", ["--num-steps", "3"]), "at", True, 8 / 255)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    eps = torch.where(torch.rand_like(x) > 0.5, 8 / 255, 7 / 255).float()
    advs = []
    for m in (model, Autocast(model)):
        torch.manual_seed(1)
        advs.append(loss_fn.adversarial(m, x, y, eps))
    same = float(((advs[0] - advs[1]).abs() < 1e-6).float().mean())
    assert 0.8 <= same < 1.0                     # < 1: autocast really ran in bf16
    steps = []
    for m in (model, Autocast(model)):
        model.zero_grad()
        loss = loss_fn.objective(m, x, advs[0], y)
        loss.backward()
        assert loss.dtype == torch.float32
        steps.append((loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (l32, g32), (l16, g16) = steps
    assert l16 == pytest.approx(l32, rel=0.01)
    assert F.cosine_similarity(g32, g16, dim=0) > 0.9


@pytest.mark.parametrize("method,loss,part_phase", [("part", "at", True), ("part", "at", False),
                                                    ("part_t", "trades", True), ("part_m", "mart", True)])
def test_static_buffer_attack_equals_the_attack(method, loss, part_phase):
    """The path that CUDA captures (copy into static buffers, attack them, copy out), run eagerly,
    is the plain attack bit for bit, batch after batch; other batch sizes pass through."""
    model = trained_a_little("resnet").train()
    plain = training_loss(get_args(method, ["--num-steps", "2"]), loss, part_phase, 8 / 255)
    static = GraphedAttack(plain.attack, 4, capture=False)
    for seed in (1, 2):
        x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
        eps = torch.where(torch.rand_like(x) > 0.5, 8 / 255, 7 / 255).float()
        for budget in (eps, 8 / 255):
            torch.manual_seed(seed)
            a = plain.adversarial(model, x, y, budget)
            torch.manual_seed(seed)
            b = static(model, x, y, budget)
            assert torch.equal(a, b) and model.training
    assert len(static.slots) == 2                       # one per budget kind
    torch.manual_seed(3)
    a = plain.adversarial(model, x[:3], y[:3], 8 / 255)
    torch.manual_seed(3)
    assert torch.equal(a, static(model, x[:3], y[:3], 8 / 255)) and len(static.slots) == 2


def test_aa_subset(tiny_folder, tmp_path):
    res = train(tiny_folder, tmp_path, "--epochs", "1", "--warm-up", "1", "--eval", "natural,aa", "--aa-subset", "6")
    assert res["test_images"] == 40 and res["images"] == {"natural": 40, "aa": 6}
    assert res["counts"]["aa"] == round(res["aa"] * 6 / 100) and res["args"]["aa_subset"] == 6
