"""--mask-rule random: PART's share of full-budget elements without its placement (issue 17, §2)."""
import pytest
import torch

from tests.conftest import train
from utils.args import get_args
from utils.budgets import RandomBudget

EPS, LOW = 8 / 255, 7 / 255


def test_share_is_p_and_the_map_ignores_image_and_model():
    policy = RandomBudget(0.3, EPS, LOW)
    x = torch.rand(64, 3, 32, 32)
    torch.manual_seed(4)
    a = policy(0, x)
    assert a.shape == x.shape and set(a.unique().tolist()) == {torch.tensor(EPS).item(), torch.tensor(LOW).item()}
    assert abs((a == EPS).float().mean().item() - 0.3) < 0.01
    torch.manual_seed(4)
    assert torch.equal(policy(7, torch.zeros_like(x)), a)      # other images, another batch index: same draw
    assert not torch.equal(policy(0, x), a)                    # the next batch draws anew


def test_flags():
    args = get_args("part", ["--mask-rule", "random", "--random-share", "0.25"])
    assert args.random_share == 0.25
    for argv in (["--mask-rule", "random"], ["--random-share", "0.5"], ["--mask-rule", "random", "--random-share", "1"]):
        with pytest.raises(SystemExit):
            get_args("part", argv)


def test_training_logs_the_share_and_differs_from_part(tiny_folder, tmp_path):
    res = train(tiny_folder, tmp_path / "r", "--mask-rule", "random", "--random-share", "0.2", "--eval", "natural")
    row = res["history"][1]
    assert res["method"] == "AT-random" and row["phase"] == "part"
    assert abs(row["full_budget_fraction"] - 0.2) < 0.01


def test_the_mask_rules_are_one_table():
    """The command line's torch-free table of mask rules is the two builder registries': the CAM-free
    rules' budgets (utils.budgets) and the CAM rules' maps (cam.masks), each rule in exactly one."""
    from cam.masks import CAM_RULES
    from utils.budgets import CAM_FREE_BUDGETS
    from utils.rules import CAM_FREE_RULES, MASK_RULES, RULES
    assert tuple(CAM_FREE_BUDGETS) == CAM_FREE_RULES and set(CAM_FREE_RULES) <= set(MASK_RULES)
    assert tuple(CAM_RULES) == tuple(n for n, r in RULES.items() if r.needs_cam)
    assert set(CAM_RULES) | set(CAM_FREE_BUDGETS) == set(MASK_RULES)
