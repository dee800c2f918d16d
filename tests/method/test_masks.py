"""The epsilon-map rules: the official rule against the shared reference vectors and PIL itself."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cam.maps import minmax_normalise
from cam.rules import epsilon_map as rule_epsilon_map
from cam.rules import official, pil_bicubic_matrix
from tests.conftest import FIXTURE

EPS, LOW = 8 / 255, 7 / 255


def epsilon_map(cam: torch.Tensor, size: int, epsilon: float, low_epsilon: float, rule: str) -> torch.Tensor:
    """The rule's (B, 3, size, size) epsilon map of the maps `cam` (the batch: B images of that size)."""
    s = SimpleNamespace(epsilon=epsilon, low_epsilon=low_epsilon, mask_rule=rule, rule_params={})
    return rule_epsilon_map(s, cam, torch.zeros(len(cam), 3, size, size, device=cam.device))


@pytest.mark.parametrize("case,size", [("r18_cifar", 32), ("wrn_cifar", 32), ("r18_tiny", 64)])
def test_official_rule_reproduces_reference(case, size):
    ref = np.load(FIXTURE)
    cam = torch.from_numpy(ref[f"{case}_cam"])
    # The rule's own answer (what cam-info reads): the elements whose reference weight exceeds 1.
    important = official(cam, torch.zeros(len(cam), 3, size, size), None).numpy()
    assert np.array_equal(important, ref[f"{case}_weight"] > 1)
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
def test_two_values_and_constant_maps(rule):
    torch.manual_seed(0)
    cam = torch.rand(5, 4, 4)
    cam[0] = 0.0                          # a constant CAM: no pixel stands out
    eps = epsilon_map(cam, 32, EPS, LOW, rule)
    assert eps.shape == (5, 3, 32, 32) and eps.dtype == torch.float32
    values = set(torch.unique(eps).tolist())
    assert values == {torch.tensor(EPS).item(), torch.tensor(LOW).item()}
    # Both rules: no full budget anywhere (official: torchcam 0.3.2 makes the map NaN, see below).
    assert torch.all(eps[0] == torch.tensor(LOW))
    assert torch.all((eps[1:] == torch.tensor(EPS)).float().mean(dim=(1, 2, 3)) > 0)


def _official_replay(raw: np.ndarray, size: int) -> np.ndarray:
    """The official pipeline on one raw CAM (after the ReLU), replayed with the libraries it uses:
    torchcam 0.3.2's min-max (no epsilon), a 32-bit PIL image, bicubic resize, squared, matplotlib's
    jet, z-scored over the overlay, clamped at 1; epsilon where the weight exceeds 1."""
    import warnings
    from matplotlib import colormaps
    cam = raw - raw.min()
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        cam = cam / cam.max()                                   # 0 / 0 = NaN for a constant map
        overlay = Image.fromarray(cam.astype(np.float32), mode="F").resize((size, size), Image.BICUBIC)
        rgb = colormaps["jet"](np.asarray(overlay) ** 2)[:, :, :3]
        rgb = (255 * rgb).astype(np.double) / 255
        weight = (rgb - rgb.mean()) / rgb.std()
        weight = np.clip(weight, 1, weight.max())
    return np.where(weight > 1, EPS, LOW).transpose(2, 0, 1).astype(np.float32)


def test_official_rule_matches_a_replay_of_torchcam_normalisation():
    """Raw CAMs after the ReLU, three of them constant (all zero, as a ReLU of negative scores
    gives, and a positive constant): our min-max + official rule equals the replay map for map."""
    torch.manual_seed(1)
    raw = torch.relu(torch.randn(6, 4, 4))
    raw[1] = 0.0
    raw[3] = 0.7
    raw[5] = torch.relu(-torch.rand(4, 4))     # all-negative scores
    ours = epsilon_map(minmax_normalise(raw), 32, EPS, LOW, "official").numpy()
    for i in range(len(raw)):
        np.testing.assert_array_equal(ours[i], _official_replay(raw[i].double().numpy(), 32), err_msg=f"map {i}")
    assert np.all(ours[[1, 3, 5]] == np.float32(LOW)) and np.any(ours[0] == np.float32(EPS))


def test_cam_rule_same_for_all_channels_and_follows_the_cam():
    cam = torch.zeros(1, 4, 4)
    cam[0, 0, 0] = 1.0                    # one hot corner
    eps = epsilon_map(cam, 32, EPS, LOW, "cam")
    assert torch.equal(eps[:, 0], eps[:, 1]) and torch.equal(eps[:, 1], eps[:, 2])
    assert eps[0, 0, 0, 0] == torch.tensor(EPS) and eps[0, 0, -1, -1] == torch.tensor(LOW)
