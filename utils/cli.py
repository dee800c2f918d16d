"""The entry point of train_eval_part*.py. The command line is parsed before torch is imported, so
`--help` and flag mistakes answer at once."""
from __future__ import annotations

import sys

from utils.args import get_args
from utils.errors import UserError


def main(method_key: str, argv: list[str] | None = None) -> int:
    args = get_args(method_key, argv)
    from utils.train import run   # torch, torchvision, the models: only once the flags are good
    try:
        run(args)
    except UserError as exc:
        print(f"train_eval_{method_key}.py: error: {exc}", file=sys.stderr)
        return 2
    return 0
