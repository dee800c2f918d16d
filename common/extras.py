"""The optional parts of the install (pyproject.toml's extras): the commands that need one check for it
first and refuse in one line naming the extra, so that the core install runs the three scripts."""
from __future__ import annotations

import importlib
import importlib.util

from common.errors import UserError

# module -> the extra that installs it: `pip install -e ".[EXTRA]"`
EXTRAS = {"robustbench": "robustbench"}


def require(module: str, what: str) -> None:
    """Refuse in one line (UserError) when `module` is not installed: `what` needs the extra that brings it."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{what} needs {module}, which the core install leaves out: pip install -e \".[{EXTRAS[module]}]\"")
