"""The epsilon-map rules: the official rule against the shared reference vectors and PIL itself."""
import numpy as np
import pytest
import torch
from PIL import Image

from cam import epsilon_map, official_weight
from cam.masks import pil_bicubic_matrix
from tests.conftest import FIXTURE

EPS, LOW = 8 / 255, 7 / 255


@pytest.mark.skipif(not FIXTURE.exists(), reason="shared fixture missing")
@pytest.mark.parametrize("case,size", [("r18_cifar", 32), ("wrn_cifar", 32), ("r18_tiny", 64)])
def test_official_rule_reproduces_reference(case, size):
    ref = np.load(FIXTURE)
    cam = torch.from_numpy(ref[f"{case}_cam"])
    weight = official_weight(cam, size).double().numpy()
    np.testing.assert_allclose(weight, ref[f"{case}_weight"], atol=1e-5, rtol=0)
    eps = epsilon_map(cam, size, EPS, LOW, "official").numpy()
    assert eps.shape == ref[f"{case}_eps"].shape
    assert np.array_equal(eps, ref[f"{case}_eps"])


@pytest.mark.parametrize("n_in,n_out", [(4, 32), (8, 32), (8, 64), (10, 32)])
def test_bicubic_matrix_is_pils(n_in, n_out):
    rng = np.random.default_rng(n_in * n_out)
    a = rng.random((n_in, n_in), dtype=np.float32)
    pil = np.asarray(Image.fromarray(a, mode="F").resize((n_out, n_out), Image.BICUBIC))
    r = torch.from_numpy(pil_bicubic_matrix(n_in, n_out))
    ours = (r @ (torch.from_numpy(a).double() @ r.t()).float().double()).float().numpy()
    np.testing.assert_array_equal(ours, pil)


@pytest.mark.parametrize("rule", ["official", "cam"])
def test_two_values_and_zero_variance(rule):
    torch.manual_seed(0)
    cam = torch.rand(5, 4, 4)
    cam[0] = 0.0                          # a constant CAM: no pixel stands out
    eps = epsilon_map(cam, 32, EPS, LOW, rule)
    assert eps.shape == (5, 3, 32, 32) and eps.dtype == torch.float32
    values = set(torch.unique(eps).tolist())
    assert values <= {torch.tensor(EPS).item(), torch.tensor(LOW).item()} and len(values) == 2
    if rule == "cam":
        assert torch.all(eps[0] == torch.tensor(LOW))
    else:
        # Upstream quirk, reproduced: jet(0) is (0, 0, 0.5), so a constant CAM still has variance
        # across channels and the whole blue channel z-scores above 1.
        assert torch.all(eps[0, :2] == torch.tensor(LOW)) and torch.all(eps[0, 2] == torch.tensor(EPS))
    assert torch.all((eps[1:] == torch.tensor(EPS)).float().mean(dim=(1, 2, 3)) > 0)


def test_cam_rule_same_for_all_channels_and_follows_the_cam():
    cam = torch.zeros(1, 4, 4)
    cam[0, 0, 0] = 1.0                    # one hot corner
    eps = epsilon_map(cam, 32, EPS, LOW, "cam")
    assert torch.equal(eps[:, 0], eps[:, 1]) and torch.equal(eps[:, 1], eps[:, 2])
    assert eps[0, 0, 0, 0] == torch.tensor(EPS) and eps[0, 0, -1, -1] == torch.tensor(LOW)


def test_unknown_rule():
    with pytest.raises(ValueError):
        epsilon_map(torch.rand(1, 4, 4), 32, EPS, LOW, "magic")
