"""The TRADES and MART objectives against an independent re-derivation of the reference formulas, the
TRADES attack against the official loop, and BatchNorm statistics left alone by every pass that
only looks at the model (training attacks, CAMs, mask grids, evaluation)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attacks.common import clamp_projection
from attacks.mart import mart_objective_logits
from attacks.trades import trades, trades_objective_logits
from cam.maps import compute_cam
from models.zoo import build_model
from part import VARIANTS, PartSettings
from part.step import BASE_METHODS, attack_of, objective_of, phase
from runner.cli.args import get_args
from runner.evaluation.evaluate import evaluate
from runner.training.run import prepare


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _fixed_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 10)) * 3
    za = z + rng.normal(size=(7, 10)) * 2
    y = rng.integers(0, 10, size=7)
    y[0] = int(np.argmax(_softmax(za)[0]))   # one example whose adversarial top class is the label
    return z, za, y


def test_trades_value_from_the_formula():
    """TRADES: CE(f(x), y) + beta / B * sum_i KL(p_i || q_i), p = softmax(f(x)), q = softmax(f(x_adv))."""
    z, za, y = _fixed_logits()
    p, q = _softmax(z), _softmax(za)
    ce = -np.mean(np.log(p[np.arange(len(y)), y]))
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=1)
    expected = ce + 6.0 * kl.sum() / len(y)
    got = trades_objective_logits(torch.from_numpy(z), torch.from_numpy(za), torch.from_numpy(y), 6.0)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_mart_value_from_the_formula():
    """MART: CE(f(x_adv), y) - mean log(1 - q_{i, t_i}) with t_i the most likely wrong class under
    x_adv, + beta / B * sum_i KL(p_i || q_i) * (1 - p_{i, y_i}) (with upstream's 1e-12 / 1.0001 guards)."""
    z, za, y = _fixed_logits()
    p, q = _softmax(z), _softmax(za)
    idx = np.arange(len(y))
    wrong = q.copy()
    wrong[idx, y] = -1
    t = wrong.argmax(1)
    bce = -np.mean(np.log(q[idx, y])) - np.mean(np.log(1.0001 - q[idx, t] + 1e-12))
    kl = np.sum(p * (np.log(p) - np.log(q + 1e-12)), axis=1)
    expected = bce + 5.0 * np.sum(kl * (1.0000001 - p[idx, y])) / len(y)
    got = mart_objective_logits(torch.from_numpy(z), torch.from_numpy(za), torch.from_numpy(y), 5.0)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_trades_clean_target_once_equals_every_step():
    torch.manual_seed(0)
    model = build_model("smallcnn", 10).eval()
    torch.nn.init.normal_(model.classifier[-1].weight, std=0.1)
    x = torch.rand(6, 3, 32, 32)
    eps = torch.where(torch.rand_like(x) > 0.5, torch.tensor(8 / 255), torch.tensor(7 / 255))
    torch.manual_seed(3)
    ours = trades(model, x, None, eps, 2 / 255, 5)
    # The official loop: the clean softmax recomputed at every step.
    torch.manual_seed(3)
    x_adv = x + 0.001 * torch.randn_like(x)
    for _ in range(5):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction="sum")
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = clamp_projection(x_adv.detach() + 2 / 255 * grad.sign(), x, eps)
    assert torch.equal(ours, x_adv)
    assert not torch.equal(ours, x)


def _bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def _unchanged(before, model):
    after = _bn_state(model)
    return all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture(scope="module")
def bn_model():
    torch.manual_seed(0)
    model = build_model("resnet", 10)
    model.train()
    model(torch.rand(8, 3, 32, 32))          # running statistics away from their initial values
    return model


@pytest.mark.parametrize("method", list(VARIANTS))
@pytest.mark.parametrize("part_phase", [False, True])
def test_training_attack_keeps_batchnorm_statistics(bn_model, method, part_phase):
    args = get_args(method, ["--num-steps", "2"])
    step = phase("part" if part_phase else "warm-up", PartSettings.from_args(args),
                 BASE_METHODS[VARIANTS[method].base_key], reweighted=part_phase)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    before = _bn_state(bn_model)
    x_adv = attack_of(step)(bn_model, x, y, 8 / 255)
    assert bn_model.training and _unchanged(before, bn_model)
    assert not torch.equal(x_adv, x)
    objective_of(step)(bn_model, x, x_adv, y)    # the objective, in train mode, does update them
    assert not _unchanged(before, bn_model)


@pytest.mark.parametrize("cam", ["gradcam", "layercam", "lib-gradcam"])
def test_cam_keeps_batchnorm_statistics(bn_model, cam):
    before = _bn_state(bn_model)
    compute_cam(bn_model, torch.rand(3, 3, 32, 32), cam)
    assert bn_model.training and _unchanged(before, bn_model)


def test_mask_grid_and_evaluation_keep_batchnorm_statistics(tiny_folder, tmp_path):
    args = get_args("part_t", ["--model", "smallcnn-bn", "--data-dir", str(tiny_folder), "--no-download",
                               "--num-steps", "1", "--save-masks", "2", "--batch-size", "16",
                               "--test-subset", "4", "--no-progress", "--model-dir", str(tmp_path)])
    trainer, test_loader, _, _ = prepare(args)
    model = trainer.model.train()
    model(torch.rand(8, 3, 32, 32))
    before = _bn_state(model)
    trainer.mask_grid(1, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").exists() and model.training and _unchanged(before, model)
    ev = evaluate(model, test_loader, ["natural", "pgd20", "mma"], args, 10, verbose=False)
    assert ev["total"] == 4 and model.training and _unchanged(before, model)

