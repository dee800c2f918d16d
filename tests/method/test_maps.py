"""The importance-map axis (cam/maps.py): input-gradient saliency and a dataset's box as maps, any map
through any rule into PART's ε map, and the command line's refusals for maps and rules that cannot go
together."""
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from cam.maps import MAPS, box_map, importance_map, input_gradient
from cam.rules import RULES, epsilon_map
from tests.conftest import trained_a_little
from common.errors import UserError


def test_input_gradient_is_the_summed_absolute_gradient_of_each_image_in_eval_mode():
    model = trained_a_little("smallcnn-bn")
    model.train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    torch.manual_seed(0)
    x, y = torch.rand(5, 3, 32, 32), torch.randint(0, 10, (5,))
    ours = input_gradient(model, x, y)
    # Independently: one image at a time, in eval mode, the mean over a batch of one.
    model.eval()
    expected = []
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        g, = torch.autograd.grad(F.cross_entropy(model(xi), y[i:i + 1]), xi)
        s = g.abs().sum(1)[0]
        expected.append((s - s.min()) / (s.max() - s.min()))
    assert ours.shape == (5, 32, 32)
    assert torch.allclose(ours, torch.stack(expected), atol=1e-5)
    model.train()
    input_gradient(model, x, y)
    assert model.training                                   # the mode it had is restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())   # BatchNorm untouched
    assert all(p.grad is None for p in model.parameters())  # no weight gradients


def test_box_map_marks_each_images_box_and_needs_one():
    x = torch.zeros(2, 3, 8, 8)
    boxes = torch.tensor([[1, 2, 4, 6], [0, 0, 8, 8]])     # top, left, bottom, right (exclusive)
    m = box_map(None, x, None, {"box": boxes})
    assert m.shape == (2, 8, 8) and m[1].all()
    assert m[0].sum() == 3 * 4 and m[0, 1:4, 2:6].all()
    with pytest.raises(UserError, match="object box"):
        importance_map("box", None, x, None, None)


@pytest.mark.parametrize("rule", [r for r in RULES if RULES[r].reads_map])
@pytest.mark.parametrize("name", ["gradcam", "gradient"])
def test_every_rule_reads_every_map(rule, name):
    """A map-reading rule turns any map into a two-level ε map; top keeps exactly its share."""
    model = trained_a_little("smallcnn-bn")
    torch.manual_seed(1)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    params = {"top": {"top_share": 0.25}}.get(rule, {})
    s = SimpleNamespace(mask_rule=rule, epsilon=8 / 255, low_epsilon=4 / 255, rule_params=params)
    eps = epsilon_map(s, importance_map(name, model, x, y), x)
    assert eps.shape == (4, 3, 32, 32)
    assert torch.isin(eps, torch.tensor([s.low_epsilon, s.epsilon], dtype=torch.float32)).all()
    if rule == "top":
        assert ((eps == torch.tensor(8 / 255)).flatten(1).sum(1) == 3 * 256).all()


def test_gradient_and_cam_maps_differ():
    """The two maps are different functions of the model (else the map axis would be a relabelling)."""
    model = trained_a_little("smallcnn-bn")
    torch.manual_seed(2)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    assert importance_map("gradient", model, x, y).shape[-1] == 32
    assert importance_map("gradcam", model, x, y).shape[-1] < 32     # at the CAM layer


def _cli(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_eval_part.py", *flags], capture_output=True, text=True)


@pytest.mark.parametrize("flags, message", [
    (("--mask-rule", "random", "--random-share", "0.2", "--cam-refresh", "official"), "reads no map"),
    (("--mask-rule", "region", "--cam-refresh", "official"), "reads no map"),
    (("--map", "box"), "needs a dataset whose images carry a box"),
])
def test_maps_and_rules_that_cannot_go_together_are_refused_in_one_line(flags, message):
    done = _cli(*flags)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_help_offers_every_map():
    done = _cli("--help")
    assert "--cam NAME, --map NAME" in done.stdout
    text = "".join(done.stdout.split())         # argparse wraps lib-gradcam as "lib- gradcam"
    assert all(name in text for name in MAPS)
