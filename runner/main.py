"""The entry point of train_eval_part*.py. The command line is parsed before torch is imported, so
`--help` and flag mistakes answer at once."""
from __future__ import annotations

import shlex
import sys

from runner.cli.args import get_args
from common.errors import NonFiniteLoss, UserError
from runner.infra.interrupt import Interrupted
from part import VARIANTS


def resume_command(method_key: str, argv: list[str], resume_args: list[str]) -> str:
    """The command line that continues an interrupted run: the same flags, --resume replaced."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            kept.append(a)
    return shlex.join(["python", VARIANTS[method_key].script, *kept, *resume_args])


def main(method_key: str, argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args(method_key, argv)
    from runner.training.run import run   # torch, torchvision, the models: only once the flags are good
    try:
        run(args)
    except UserError as exc:
        print(f"{VARIANTS[method_key].script}: error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLoss as exc:
        # The weights of this epoch are not saved; the checkpoints of earlier epochs stay as they were.
        print(f"{VARIANTS[method_key].script}: error: {exc}; stopped, the checkpoints of earlier epochs are kept "
              "(try a lower --lr)", file=sys.stderr)
        return 3
    except Interrupted as exc:
        print(f"{VARIANTS[method_key].script}: {exc}; continue with: "
              f"{resume_command(method_key, argv, exc.resume_args)}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
