"""Attacks: budgets respected, float and map budgets agree, and PGD-20 against torchattacks."""
import pytest
import torch
import torchattacks

from attacks import mma, pgd
from models import build_model
from tests.conftest import REAL_EPS, REAL_STEP

EPS = 8 / 255


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("smallcnn", 10).eval()


@pytest.mark.parametrize("attack", [pgd, mma])
def test_element_wise_budget_and_box(attack):
    model = _model()
    x = torch.rand(6, 3, 32, 32)
    y = torch.randint(0, 10, (6,))
    eps = torch.where(torch.rand(6, 3, 32, 32) > 0.5, torch.tensor(EPS), torch.tensor(2 / 255))
    adv = attack(model, x, y, eps, 2 / 255, 5, start_epsilon=EPS)
    assert adv.shape == x.shape and not adv.requires_grad
    assert torch.all((adv - x).abs() <= eps + 1e-6)
    assert adv.min() >= 0 and adv.max() <= 1
    # The small budget binds somewhere: the map is honoured, not just the largest value.
    assert (adv - x).abs()[eps < EPS].max() > 1.5 / 255


@pytest.mark.parametrize("attack", [pgd, mma])
def test_float_and_uniform_map_are_identical(attack):
    model = _model()
    x = torch.rand(4, 3, 32, 32)
    y = torch.randint(0, 10, (4,))
    torch.manual_seed(5)
    a = attack(model, x, y, EPS, 2 / 255, 3)
    torch.manual_seed(5)
    b = attack(model, x, y, torch.full_like(x, EPS), 2 / 255, 3, start_epsilon=EPS)
    assert torch.equal(a, b)


def test_pgd_raises_the_loss_and_leaves_weights_alone():
    model = _model()
    # Make the logits depend on the input so there is something to attack.
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.1)
    x = torch.rand(8, 3, 32, 32)
    y = model(x).argmax(1)
    adv = pgd(model, x, y, EPS, 2 / 255, 10)
    ce = torch.nn.functional.cross_entropy
    assert ce(model(adv), y) > ce(model(x), y)
    assert all(p.grad is None for p in model.parameters())


def test_mma_picks_the_strongest_target():
    model = _model()
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.1)
    x = torch.rand(5, 3, 32, 32)
    y = model(x).argmax(1)
    adv = mma(model, x, y, EPS, 2 / 255, 10, k=3)
    with torch.no_grad():
        before = model(x).gather(1, y[:, None])
        after = model(adv).gather(1, y[:, None])
    assert torch.all(after <= before + 1e-5)


def test_pgd20_agrees_with_torchattacks(real_at_model):
    """On a small model adversarially trained on CPU: within 1 point of torchattacks.PGD."""
    model, x, y = real_at_model
    torch.manual_seed(0)
    ours = (model(pgd(model, x, y, REAL_EPS, REAL_STEP, 20)).argmax(1) == y).float().mean().item()
    torch.manual_seed(0)
    ref_attack = torchattacks.PGD(model, eps=REAL_EPS, alpha=REAL_STEP, steps=20, random_start=True)
    ref = (model(ref_attack(x, y)).argmax(1) == y).float().mean().item()
    natural = (model(x).argmax(1) == y).float().mean().item()
    assert ref < natural           # the attack does something on this model
    assert abs(ours - ref) <= 0.01, (ours, ref)
