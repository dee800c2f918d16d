"""--mask-rule random: PART's share of full-budget elements without its placement."""
import argparse
from types import SimpleNamespace

import pytest
import torch

from cam.rules import RULES, epsilon_map
from part import PartSettings
from tests.conftest import train
from runner.cli.args import get_args

EPS, LOW = 8 / 255, 7 / 255


def test_share_is_p_and_the_map_ignores_image_and_model():
    s = SimpleNamespace(epsilon=EPS, low_epsilon=LOW, mask_rule="random", rule_params={"random_share": 0.3})
    x = torch.rand(64, 3, 32, 32)
    importance = torch.rand(64, 8, 8)
    torch.manual_seed(4)
    a = epsilon_map(s, None, x)
    assert a.shape == x.shape and set(a.unique().tolist()) == {torch.tensor(EPS).item(), torch.tensor(LOW).item()}
    assert abs((a == EPS).float().mean().item() - 0.3) < 0.01
    torch.manual_seed(4)
    assert torch.equal(epsilon_map(s, importance, torch.zeros_like(x)), a)   # other images, a map: same draw
    assert not torch.equal(epsilon_map(s, None, x), a)                       # the next batch draws anew


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


# A value for a rule's own flag, whichever of these its type takes: a share, a quadrant budget list.
SAMPLE_VALUES = ("0.3", "ul=7.5/255")


def _parses(parse, value: str) -> bool:
    try:
        parse(value)
    except argparse.ArgumentTypeError:
        return False
    return True


def _own_flags(rule: str) -> list[str]:
    """A value for each of the rule's own flags in RULES (flags with choices keep their default)."""
    argv = []
    for f in RULES[rule].flags:
        if "choices" not in f.kwargs:
            argv += [f.name, next(v for v in SAMPLE_VALUES if _parses(f.kwargs["type"], v))]
    return argv


@pytest.mark.parametrize("rule", list(RULES))
def test_every_mask_rule_builds_a_budget_between_low_and_epsilon(rule):
    """Each rule of the one table (cam.rules.RULES) builds, from its entry alone, a budget of every element
    in {ε_low .. ε}: a rule that reads a map from a map, a CAM-free rule from the command line alone."""
    args = get_args("part", ["--mask-rule", rule, *_own_flags(rule)])
    x = torch.rand(4, 3, 32, 32)
    importance = torch.rand(4, 8, 8) if RULES[rule].reads_map else None
    eps = epsilon_map(PartSettings.from_args(args), importance, x).expand_as(x)
    assert eps.shape == x.shape and eps.min() >= torch.tensor(LOW) and eps.max() <= torch.tensor(EPS)
    assert eps.max() > eps.min()               # every rule gives some elements more than others here
