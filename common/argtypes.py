"""The parser of every command here (one line on a mistake, exit 2) and the argparse types of the
command line, torch-free: finite fractions within a range (so that a negative learning rate or a NaN
budget stops at the command line, not an epoch later), bounded integers, booleans;
and `Flag`, a flag that a table entry (a mask rule, a PART variant) declares."""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from fractions import Fraction



# What argparse must read as a value, not as a flag: a negative number in any form the types take
# (-8/255, -1e-3, -.5, -inf, -nan). argparse's own pattern knows only -8 and -0.5, so `--epsilon -8/255`
# was answered "expected one argument" instead of reaching the type, which says what the range is.
NEGATIVE_NUMBER = re.compile(r"^-(?:\.?\d|inf(?:inity)?$|nan$)", re.IGNORECASE)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line on stderr, exit code 2, and takes flags only
    by their full names (an abbreviation such as --batch would slip past the checks of get_args); a
    negative value (NEGATIVE_NUMBER) reaches the flag's type, which refuses it in its own words."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # argparse's hook for what looks like a negative number (read where it sorts flags from values);
        # no flag here looks like one, so such a token is always a value.
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class OneDefaultFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with one default per flag: argparse's "(default: X)" only where the help names none itself and
    X says something (not None, False or an empty value: a flag that is off, or whose default the help
    explains)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.default == {}:
            return text
        return super()._get_help_string(action)


def parse_fraction(text: str) -> float:
    """'8/255' or '0.031' -> float; malformed or non-finite values are rejected (ranges: `number`)."""
    try:
        if "/" in text:
            num, den = text.split("/")
            value = float(Fraction(num.strip()) / Fraction(den.strip()))
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise argparse.ArgumentTypeError(f"invalid number {text!r} (use a number like 0.03 or 8/255)")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: must be finite")
    return value


def number(low: float = 0.0, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """argparse type: a finite fraction or decimal within [low, high] (an open end excludes the bound),
    so that a negative learning rate or a NaN budget stops at the command line, not an epoch later."""
    lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open or math.isinf(high) else "]")

    def parse(text: str) -> float:
        value = parse_fraction(text)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: give a finite number in {lo}, {hi}")
        return value
    return parse


rate = number(low_open=True)                        # > 0: learning rate
non_negative = number()                             # >= 0: weight decay, beta
budget = number(high=1.0)                           # [0, 1]: budgets on images in [0, 1]
positive_budget = number(high=1.0, low_open=True)   # (0, 1]: step size, evaluation budget


def int_at_least(minimum: int, maximum: int | None = None):
    """argparse type: an integer >= minimum (and <= maximum if given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} must be at most {maximum}")
        return value
    return parse


positive_int = int_at_least(1)
# --threads: a fixed cap, not a multiple of this machine's cores, so that a command line recorded on a larger
# machine (the thread count changes CPU results slightly) can be rerun as it is; 1,000,000 threads ran out of
# memory seconds later, while torch starts 1024 on a 2-core machine in under a second.
MAX_THREADS = 1024
thread_count = int_at_least(1, MAX_THREADS)
non_negative_int = int_at_least(0)
seed_int = int_at_least(0, 2**32 - 1)              # numpy's seeds: [0, 2**32 - 1]


def boolean(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no): upstream's type=bool took any non-empty string as True."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (use true or false)")


@dataclass(frozen=True)
class Flag:
    """A flag declared by a registry entry (a mask rule, a PART variant, a study's evaluation) rather than in
    runner/cli/settings.py."""
    name: str
    kwargs: dict                # argparse's add_argument keywords; the default means "not given" / "off"
    required: bool = False      # a mask rule needs it given

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")
