"""The projection of each attack is the official code's expression for it, bit for bit.

`x + clamp(x_adv - x, -eps, eps)` (torchattacks' PGD, element_wise_clamp) and
`min(max(x_adv, x - eps), x + eps)` (the official trades_loss, mart_loss and mma with a float budget)
are equal in exact arithmetic but round differently on 8-bit images; each attack must use the one
of the official code it reproduces. The official loops are replayed here from their text."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks

from attacks.common import clamp_projection, minmax_projection, no_start, sign_step, uniform_clipped_start
from attacks.mma import mma
from attacks.pgd import pgd
from attacks.trades import trades
from part import PartSettings
from part.step import BASE_METHODS, attack_of, phase
from tests.conftest import trained_a_little
from runner.cli.args import get_args

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10


def _official_minmax(x_adv, x, eps):
    return torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0.0, 1.0)


def _official_clamp(x_adv, x, eps):
    return torch.clamp(x + torch.clamp(x_adv - x, min=-eps, max=eps), 0.0, 1.0)


def _images(n: int = 8, seed: int = 0) -> torch.Tensor:
    """8-bit images, as every dataset here is stored."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g).float() / 255


def test_the_two_forms_differ_on_8_bit_images_and_each_projection_gives_its_own():
    x = _images()
    g = torch.Generator().manual_seed(1)
    # A TRADES-like start and steps: x + 0.001 N(0, 1) + k * step, partly outside the box.
    steps = torch.randint(-6, 7, x.shape, generator=g) * STEP
    x_adv = (x + 0.001 * torch.randn(x.shape, generator=g) + steps).clamp(0, 1)
    minmax, clamp = _official_minmax(x_adv, x, EPS), _official_clamp(x_adv, x, EPS)
    differ = minmax != clamp
    assert differ.any()                                         # the ulps this file is about
    assert x[differ].max() < 0.5 and (minmax - clamp).abs().max() < 1e-7      # where x is small
    assert (minmax - clamp).abs().max() < 1e-7
    assert torch.equal(minmax_projection(x_adv, x, EPS), minmax)
    assert torch.equal(clamp_projection(x_adv, x, EPS), clamp)
    # The default projection of a step is the clamp form.
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    start = x_adv.clone().requires_grad_(True)
    stepped = sign_step(start, x, (start * w).sum(), STEP, EPS)
    assert torch.equal(stepped, _official_clamp(x_adv + STEP * w.sign(), x, EPS))
    assert not torch.equal(stepped, _official_minmax(x_adv + STEP * w.sign(), x, EPS))
    # A map budget is official element_wise_clamp whatever the form.
    eps = torch.where(torch.rand(x.shape, generator=g) > 0.5, torch.tensor(EPS), torch.tensor(7 / 255))
    eta = x_adv - x
    official = torch.where(eta > eps, eps, eta)
    official = torch.clamp(x + torch.where(eta < -eps, -eps, official), 0, 1)
    for projection in (clamp_projection, minmax_projection):
        assert torch.equal(projection(x_adv, x, eps), official)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    # The small CNN after a few SGD steps: near-zero input gradients, where the ulps of the projection
    # flip gradient signs in later steps (36 to 49 of 24,576 elements differ between the two forms here;
    # 957 on a ResNet-18, which costs 20 times the time).
    return trained_a_little("smallcnn")


def _replay_trades(model, x, form):
    """The official trades_loss inner loop (random start x + 0.001 N(0, 1))."""
    torch.manual_seed(7)
    x_adv = x.detach() + 0.001 * torch.randn(x.shape).detach()
    for _ in range(STEPS):
        x_adv.requires_grad_()
        loss_kl = nn.KLDivLoss(reduction="sum")(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1))
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = form(x_adv.detach() + STEP * torch.sign(grad.detach()), x, EPS)
    return x_adv


def _replay_mart(model, x, y, form):
    """The official mart_loss inner loop (cross-entropy PGD from x + 0.001 N(0, 1))."""
    torch.manual_seed(7)
    x_adv = x.detach() + 0.001 * torch.randn(x.shape).detach()
    for _ in range(STEPS):
        x_adv.requires_grad_()
        grad = torch.autograd.grad(F.cross_entropy(model(x_adv), y), [x_adv])[0]
        x_adv = form(x_adv.detach() + STEP * torch.sign(grad.detach()), x, EPS)
    return x_adv


def _replay_mma(model, x, y, form, k=3):
    """The official mma (category Madry, rand_init False): k sequential targeted runs, the largest
    margin kept."""
    logits = model(x)
    onehot = F.one_hot(y, logits.shape[1]).float()
    index = torch.argsort(logits - 10000 * onehot)[:, logits.shape[1] - k:]
    advs, margins = [], []
    for i in range(k):
        x_adv = x.clone().detach()
        for _ in range(STEPS):
            x_adv.requires_grad_()
            out = model(x_adv)
            real = (onehot * out).sum(1)
            other = (F.one_hot(index[:, i], out.shape[1]).float() * out).sum(1)
            loss = torch.sum(-torch.clamp(real - other + 50, min=0.0))
            grad, = torch.autograd.grad(loss, x_adv)
            x_adv = form(x_adv.detach() + STEP * grad.sign(), x, EPS)
        out = model(x_adv)
        margins.append((F.one_hot(index[:, i], out.shape[1]).float() * out).sum(1) - (onehot * out).sum(1))
        advs.append(x_adv)
    best = torch.argsort(torch.stack(margins, 1))[:, -1]
    return torch.stack([advs[b][i] for i, b in enumerate(best.tolist())])


def _ours(kind, model, x, y):
    torch.manual_seed(7)
    if kind == "trades":
        return trades(model, x, None, EPS, STEP, STEPS)
    if kind == "mart":       # the MART warm-up / baseline attack exactly as the trainer builds it
        warm = phase("warm-up", PartSettings.from_args(get_args("part_m", [])), BASE_METHODS["mart"], reweighted=False)
        return attack_of(warm)(model, x, y, EPS)
    return mma(model, x, y, EPS, STEP, STEPS, start=no_start, k=3)


@pytest.mark.parametrize("kind", ["trades", "mart", "mma"])
def test_float_budget_attacks_replay_the_official_min_max_form(kind, model):
    x = _images(8, seed=2)
    y = torch.arange(8) % 10
    replay = {"trades": lambda f: _replay_trades(model, x, f), "mart": lambda f: _replay_mart(model, x, y, f),
              "mma": lambda f: _replay_mma(model, x, y, f)}[kind]
    official, other = replay(_official_minmax), replay(_official_clamp)
    ours = _ours(kind, model, x, y)
    assert torch.equal(ours, official)
    # The test has teeth: the other form gives a different adversarial batch here.
    assert not torch.equal(official, other)


def test_pgd_keeps_torchattacks_clamp_form(model):
    """The AT warm-up and the PGD-20 evaluation: torchattacks' PGD itself, called with the same noise."""
    x = _images(8, seed=3)
    y = torch.arange(8) % 10
    torch.manual_seed(11)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=STEPS, random_start=True)(x, y)
    torch.manual_seed(11)
    ours = pgd(model, x, y, EPS, STEP, STEPS, start=uniform_clipped_start)
    assert torch.equal(ours, theirs)
    torch.manual_seed(11)
    assert not torch.equal(pgd(model, x, y, EPS, STEP, STEPS, start=uniform_clipped_start,
                               project=minmax_projection), theirs)

