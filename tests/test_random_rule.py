"""--mask-rule random: PART's share of full-budget elements without its placement."""
import pytest
import torch

from tests.conftest import train
from utils.cli.args import get_args
from utils.method.budgets import RandomBudget

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


@pytest.mark.parametrize("rule", list(__import__("utils.method.rules", fromlist=["RULES"]).RULES))
def test_every_mask_rule_builds_a_budget_between_low_and_epsilon(rule):
    """Each rule of the one table (utils.method.rules.RULES) builds, from its entry alone, a budget of every
    element in {ε_low .. ε}: a CAM rule from a CAM, a CAM-free rule a policy from the command line."""
    from utils.method.rules import RULES, epsilon_map, rule_params
    flags = {"top": ["--top-share", "0.3"], "random": ["--random-share", "0.3"],
             "region": ["--region-eps", "ul=7.5/255"]}.get(rule, [])
    args = get_args("part", ["--mask-rule", rule, *flags])
    x = torch.rand(4, 3, 32, 32)
    if RULES[rule].needs_cam:
        eps = epsilon_map(torch.rand(4, 8, 8), 32, EPS, LOW, rule, **rule_params(args))
    else:
        policy, _, _ = RULES[rule].builder(args, 32, torch.device("cpu"))
        eps = policy(0, x).expand_as(x)
    assert eps.shape == x.shape and eps.min() >= torch.tensor(LOW) and eps.max() <= torch.tensor(EPS)
    assert eps.max() > eps.min()               # every rule gives some elements more than others here
