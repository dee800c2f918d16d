"""Adversarial Weight Perturbation (runner/training/awp.py) against an independent re-derivation of the
reference update (csdongxian/AWP: proxy loaded from the model, one SGD ascent step on the method's
own loss, per-layer rescaling to gamma * ||w|| / ||diff|| of the >1-dim weights, perturb, step,
restore), on a tiny BatchNorm model."""
import copy

import pytest
import torch
import torch.nn.functional as F

from part import PartSettings
from part.step import BASE_METHODS, attack_of, objective_of, phase, train_batch
from tests.conftest import train, trained_a_little
from runner.cli.args import get_args
from runner.training.awp import AWP

GAMMA, LR = 5e-3, 0.05


def _setup(method, loss):
    model = trained_a_little("smallcnn-bn").train()
    args = get_args(method, ["--num-steps", "2"])
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    eps = torch.where(torch.rand_like(x) > 0.5, 8 / 255, 7 / 255)
    step = phase("part", PartSettings.from_args(args), BASE_METHODS[loss], reweighted=True)
    return model, step, x, y, eps


class _Step:
    """The PART phase `step` on the fixed budget `eps` (no map) with its own optimizer, and AWP of size
    `gamma` around its update if given: `run(model, x, y)` is one part.step.train_batch."""

    def __init__(self, model, step, eps, gamma=None):
        self.step, self.eps = step, eps
        self.optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=2e-4)
        self.awp = None if gamma is None else AWP(model, objective_of(step), gamma, 1, LR)

    def begin_epoch(self, epoch):
        if self.awp is not None:
            self.awp.begin_epoch(epoch)

    def run(self, model, x, y):
        return train_batch(self.step, model, x, y, self.optimizer, eps=self.eps, awp=self.awp)


def _reference_objective(net, x, x_adv, y, loss):
    """The reference's own losses: AT cross-entropy; TRADES CE(x) + beta * KL(x_adv || x), batchmean."""
    if loss == "at":
        return F.cross_entropy(net(x_adv), y)
    return F.cross_entropy(net(x), y) + 6.0 * F.kl_div(F.log_softmax(net(x_adv), dim=1), F.softmax(net(x), dim=1),
                                                     reduction="batchmean")


@pytest.mark.parametrize("method,loss", [("part", "at"), ("part_t", "trades")])
def test_one_awp_step_equals_the_reference_update(method, loss):
    model, step, x, y, eps = _setup(method, loss)
    ref_model = copy.deepcopy(model)
    plain_model = copy.deepcopy(model)
    awp = _Step(model, step, eps, GAMMA)
    awp.begin_epoch(1)
    torch.manual_seed(5)
    awp.run(model, x, y)

    # The reference, written out: the same adversarial batch (same attack, same seed) ...
    torch.manual_seed(5)
    x_adv = attack_of(step)(ref_model, x, y, eps)
    # ... a proxy ascends the loss with plain SGD ...
    proxy = copy.deepcopy(ref_model)
    proxy.load_state_dict(ref_model.state_dict())
    proxy.train()
    proxy_opt = torch.optim.SGD(proxy.parameters(), lr=LR)
    proxy_opt.zero_grad()
    (-_reference_objective(proxy, x, x_adv, y, loss)).backward()
    proxy_opt.step()
    old, new = ref_model.state_dict(), proxy.state_dict()
    diff = {k: old[k].norm() / ((new[k] - old[k]).norm() + 1e-20) * (new[k] - old[k])
            for k in old if "weight" in k and old[k].dim() > 1}
    assert diff and all(v.dim() > 1 for v in diff.values())
    # ... the model is perturbed, steps, and the perturbation is removed.
    opt = torch.optim.SGD(ref_model.parameters(), lr=LR, momentum=0.9, weight_decay=2e-4)
    with torch.no_grad():
        for name, p in ref_model.named_parameters():
            if name in diff:
                p.add_(GAMMA * diff[name])
    opt.zero_grad()
    _reference_objective(ref_model, x, x_adv, y, loss).backward()
    opt.step()
    with torch.no_grad():
        for name, p in ref_model.named_parameters():
            if name in diff:
                p.add_(-GAMMA * diff[name])

    # The plain step from the same batch, to show that AWP changed something.
    torch.manual_seed(5)
    _Step(plain_model, step, eps).run(plain_model, x, y)
    ours, ref, plain = model.state_dict(), ref_model.state_dict(), plain_model.state_dict()
    for k in ours:
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-5, atol=1e-7, msg=k)
    assert max(float((ours[k] - plain[k]).abs().max()) for k in ours if ours[k].is_floating_point()) > 1e-6


def test_the_proxy_leaves_the_model_alone():
    """Its ascent step and its train-mode forwards change neither the weights nor the BatchNorm
    statistics of the model; gamma 0 with AWP on is the plain step bit for bit."""
    model, step, x, y, eps = _setup("part", "at")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    awp = _Step(model, step, eps, 0.0)
    awp.awp.perturbation(x, x, y)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    plain_model = copy.deepcopy(model)
    plain = _Step(plain_model, step, eps)
    awp.begin_epoch(1)
    assert awp.awp.active
    for seed in (1, 2):
        torch.manual_seed(seed)
        awp.run(model, x, y)
        torch.manual_seed(seed)
        plain.run(plain_model, x, y)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), plain_model.state_dict().values()))


def test_awp_switches_on_at_its_epoch_and_gamma_zero_is_no_decoration(tiny_folder, tmp_path):
    from runner.training.run import prepare
    args = get_args("part", ["--model", "smallcnn", "--data-dir", str(tiny_folder), "--no-download", "--awp-gamma",
                             "5e-3", "--awp-warmup", "3", "--epochs", "4", "--warm-up", "1"])
    trainer, *_ = prepare(args)
    phases = (trainer.warm_up_phase, trainer.main_phase)
    assert set(trainer.awp) == {p.name for p in phases} and all(isinstance(a, AWP) for a in trainer.awp.values())
    assert all(a.gamma == 5e-3 and a.model is trainer.model for a in trainer.awp.values())
    main = trainer.awp[trainer.main_phase.name]
    trainer.begin_epoch(2, None)          # the main phase's epoch 2 (after the one warm-up epoch)
    assert trainer.phase(2) is trainer.main_phase and not main.active
    trainer.begin_epoch(3, None)
    assert main.active
    plain, *_ = prepare(get_args("part", ["--model", "smallcnn", "--data-dir", str(tiny_folder), "--no-download",
                                          "--awp-gamma", "0"]))
    assert plain.awp == {}
    # A short AWP run trains and records its settings.
    res = train(tiny_folder, tmp_path, "--awp-gamma", "5e-3", "--model", "smallcnn-bn")
    assert res["epochs_done"] == 2 and res["args"]["awp_gamma"] == 5e-3
