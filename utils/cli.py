"""The entry point of train_eval_part*.py. The command line is parsed before torch is imported, so
`--help` and flag mistakes answer at once."""
from __future__ import annotations

import sys

from utils.args import get_args
from utils.errors import NonFiniteLoss, UserError


def main(method_key: str, argv: list[str] | None = None) -> int:
    args = get_args(method_key, argv)
    from utils.train import run   # torch, torchvision, the models: only once the flags are good
    try:
        run(args)
    except UserError as exc:
        print(f"train_eval_{method_key}.py: error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLoss as exc:
        # The weights of this epoch are not saved; the checkpoints of earlier epochs stay as they were.
        print(f"train_eval_{method_key}.py: error: {exc}; stopped, the checkpoints of earlier epochs are kept "
              "(try a lower --lr)", file=sys.stderr)
        return 3
    return 0
