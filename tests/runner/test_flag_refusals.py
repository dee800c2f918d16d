"""Flag values refused by the flag's own type, at parse time, in one line: a negative number written as a
fraction (argparse took `-8/255` for a flag), and a thread count no machine can start."""
import argparse
import subprocess
import sys

import pytest

from part import VARIANTS
from tests.conftest import REPO
from runner.cli.args import build_parser, get_args


def _refused(capsys, method, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        get_args(method, argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _fraction_flags(method: str) -> list[str]:
    """Every flag of `method`'s script whose type takes a fraction (1/4)."""
    flags = []
    for action in build_parser(method)._actions:
        if not action.option_strings or not callable(action.type):
            continue
        try:
            if isinstance(action.type("1/4"), float):
                flags.append(action.option_strings[0])
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            pass
    return flags


@pytest.mark.parametrize("method", list(VARIANTS))
def test_a_negative_fraction_reaches_the_type_of_every_flag(method, capsys):
    flags = _fraction_flags(method)
    assert {"--epsilon", "--low-epsilon", "--step-size", "--eval-epsilon", "--lr", "--weight-decay", "--momentum",
            "--awp-gamma", "--cam-info-share", *(["--beta"] if method != "part" else [])} <= set(flags), flags
    for flag in flags:
        for argv in ([flag, "-8/255"], [f"{flag}=-8/255"], [flag, "-1e-3"]):
            err = _refused(capsys, method, argv)
            value = argv[-1].split("=", 1)[-1]
            assert f"argument {flag}" in err and f"'{value}' is out of range: give a finite number in " in err, err
            assert "expected one argument" not in err


def test_a_negative_budget_says_its_range(capsys):
    err = _refused(capsys, "part", ["--epsilon", "-8/255"])
    assert err.endswith("argument --epsilon: '-8/255' is out of range: give a finite number in [0, 1]\n"), err
    err = _refused(capsys, "part", ["--epsilon", "-inf"])
    assert "argument --epsilon: invalid number '-inf': must be finite" in err, err


def test_the_script_refuses_a_negative_fraction_without_torch():
    """As a user runs it: one line, exit 2, and the answer comes before torch is imported."""
    probe = ("import runpy, sys\n"
             "sys.argv = ['train_eval_part.py', '--epsilon', '-8/255']\n"
             "try:\n    runpy.run_path('train_eval_part.py', run_name='__main__')\n"
             "except SystemExit as exc:\n    print('EXIT', exc.code)\n"
             "print('HEAVY', sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "EXIT 2" in out.stdout and "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert out.stderr == "train_eval_part.py: error: argument --epsilon: '-8/255' is out of range: give a finite " \
                         "number in [0, 1]\n", out.stderr


def test_threads_are_capped_at_parse_time(capsys):
    """A fixed cap (not a multiple of this machine's cores: a command line from a larger machine reruns)."""
    err = _refused(capsys, "part", ["--threads", "1000000"])
    assert "argument --threads: 1000000 must be at most 1024" in err, err
    assert get_args("part", ["--threads", "1024"]).threads == 1024
