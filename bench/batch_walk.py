"""The functions and files one training batch runs: `train_batch` of a PART phase (or --base's), traced
call by call on random data (the count docs/method.md gives).

    python -m bench.batch_walk [--base at|trades|mart] [--map gradcam] [--rule official]

Lists, per file of this project, the Python functions called during one batch (comprehensions and
lambdas left out), then the totals with and without the model's own code (models/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cam.rules import _jet_table, _table, pil_bicubic_matrix
from models.zoo import build_model
from part import PartSettings
from part.step import BASE_METHODS, phases, train_batch

ROOT = Path(__file__).resolve().parents[1]


def walk(base: str, cam: str, rule: str) -> dict[tuple[str, str], int]:
    """{(file, function): calls} of one PART batch of `base` on 8 random CIFAR-sized images: the first
    batch of a run, so the official rule's constant tables are built in it (their caches emptied first)."""
    for table in (_table, pil_bicubic_matrix, _jet_table):
        table.cache_clear()
    torch.manual_seed(0)
    s = PartSettings(warm_up=0, num_steps=2, beta=6.0, cam=cam, mask_rule=rule)
    model = build_model("smallcnn-bn", num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    _, part = phases(s, BASE_METHODS[base])
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    seen: dict[tuple[str, str], int] = {}

    def profile(frame, event, arg):
        name = frame.f_code.co_name
        if event != "call" or name.startswith("<"):
            return
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ROOT):
            key = (path.relative_to(ROOT).as_posix(), frame.f_code.co_qualname)
            seen[key] = seen.get(key, 0) + 1
    sys.setprofile(profile)
    try:
        train_batch(part, model, x, y, optimizer)
    finally:
        sys.setprofile(None)
    return seen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="at", choices=tuple(BASE_METHODS))
    parser.add_argument("--map", default="gradcam")
    parser.add_argument("--rule", default="official")
    args = parser.parse_args(argv)
    seen = walk(args.base, args.map, args.rule)
    files = sorted({f for f, _ in seen})
    for f in files:
        print(f"{f}: {', '.join(q for g, q in seen if g == f)}")
    method = [k for k in seen if not k[0].startswith("models/")]
    print(f"{len(seen)} functions in {len(files)} files; without models/ (the network and eval_mode): "
          f"{len(method)} in {len({f for f, _ in method})}")


if __name__ == "__main__":
    main()
