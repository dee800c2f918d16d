"""Attacks: budgets respected, float and map budgets agree, and PGD-20 against torchattacks."""
import pytest
import torch
import torchattacks

from attacks.common import clamp_projection
from attacks.mma import mma
from attacks.pgd import pgd
from models.zoo import build_model
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
    # A map always takes the element-wise clamp; so does a float with project=clamp_projection (MMA's
    # default for a float is the official min/max form, tests/method/test_projection.py).
    a = attack(model, x, y, EPS, 2 / 255, 3, project=clamp_projection)
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


class _Linear(torch.nn.Module):
    """logits = W x + b on flattened images, so each target's reachability is set by hand."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.t() + self.b


def test_mma_picks_the_strongest_target():
    """Class 0 is true. The wrong classes rank 1, 2, 3 by clean logit (4.4, 4.2, 4.0 against 5.4).
    Class 1 moves exactly with class 0, so no perturbation closes its margin; class 2 gains 0.24 at
    most; class 3 gains 2.64 and overtakes class 0. The strongest target is the last one tried."""
    d = 3 * 4 * 4
    w = torch.zeros(4, d)
    w[0] = 0.1
    w[1] = 0.1
    w[3] = -1.0
    b = torch.tensor([3.0, 2.0, 4.2, 28.0])
    model = _Linear(w, b)
    x = torch.full((2, 3, 4, 4), 0.5)
    y = torch.zeros(2, dtype=torch.long)
    clean = model(x)[0]
    assert clean.argsort(descending=True).tolist() == [0, 1, 2, 3]
    torch.manual_seed(0)
    adv = mma(model, x, y, 0.05, 0.01, 10, k=3)
    assert torch.all(model(adv).argmax(1) == 3)
    assert torch.all((adv - x).abs() <= 0.05 + 1e-7)
    alone = mma(model, x, y, 0.05, 0.01, 10, k=1)   # only the top wrong class: the attack fails
    assert torch.all(model(alone).argmax(1) == 0)


def test_pgd20_agrees_with_torchattacks(real_at_model):
    """On a small model adversarially trained on CPU, from the same seed: torchattacks.PGD's adversarial
    images, element for element (128 test images)."""
    model, x, y = real_at_model
    x, y = x[:128], y[:128]
    torch.manual_seed(0)
    ours = pgd(model, x, y, REAL_EPS, REAL_STEP, 20)
    torch.manual_seed(0)
    ref = torchattacks.PGD(model, eps=REAL_EPS, alpha=REAL_STEP, steps=20, random_start=True)(x, y)
    robust, natural = ((model(v).argmax(1) == y).sum().item() for v in (ref, x))
    assert robust < natural        # the attack does something on this model
    assert torch.equal(ours, ref)


def test_aa_standard_equals_the_package_called_directly(real_at_model):
    """--eval aa-standard (seeded, per batch) gives the count of the authors' AutoAttack called by hand.
    Two correctly classified images of a small adversarially trained model that PGD-20 breaks, so that
    APGD-CE has work (an image it does not break costs every later attack, 20 s of suite time here)."""
    import pyautoattack
    from torch.utils.data import DataLoader, TensorDataset

    from runner.cli.args import get_args
    from runner.evaluation.evaluate import evaluate
    model, x, y = real_at_model
    torch.manual_seed(0)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    broken = model(pgd(model, x, y, REAL_EPS, REAL_STEP, 20)).argmax(1) != y
    pick = torch.nonzero(correct & broken)[:2, 0]
    x, y = x[pick].contiguous(), y[pick]
    args = get_args("part", ["--eval-epsilon", "8/255"])
    ev = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=len(y)), ["natural", "aa-standard"], args, 10,
                  verbose=False)
    attack = pyautoattack.AutoAttack(model, norm="Linf", eps=REAL_EPS, version="standard", seed=0, device="cpu")
    x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(y))
    direct = int((model(x_adv).argmax(1) == y).sum())
    assert ev["counts"]["natural"] == 2 and ev["counts"]["aa-standard"] == direct == 0


def test_evaluation_uses_eval_epsilon_not_epsilon(real_at_model):
    """PGD-20 reads --eval-epsilon; the training budgets (--epsilon, --low-epsilon) leave it alone."""
    from torch.utils.data import DataLoader, TensorDataset

    from runner.cli.args import get_args
    from runner.evaluation.evaluate import evaluate
    model, x, y = real_at_model
    loader = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=64)

    def robust(*argv: str) -> int:
        return evaluate(model, loader, ["pgd20"], get_args("part", list(argv)), 10, verbose=False)["counts"]["pgd20"]
    base = robust()
    assert robust("--epsilon", "2/255", "--low-epsilon", "1/255") == base
    assert robust("--eval-epsilon", "2/255") > base
