"""Gradient masking check of trained models: do their PGD-20 accuracies survive stronger attacks, and a
transfer attack from another model, on the same test images?

    python -m studies.masking TARGET.pt --source SOURCE.pt --data-dir DIR --out RESULT.json

TARGET and SOURCE are checkpoints of this code (their data, test subset and AutoAttack subset come from
TARGET's record); every attack runs on TARGET's AutoAttack images (--aa-subset of its --test-subset), with
the budget of its evaluation (8/255):

  natural        clean accuracy on those images;
  pgd20          PGD-20 as the runs' evaluation (step --step-size, a uniform start clipped to [0, 1]);
  pgd100x5       PGD-100 with 5 random restarts: an image counts as robust only if it survives all five;
  apgd-ce        APGD with the cross-entropy loss alone, by AutoAttack's authors (100 iterations);
  apgd-t         targeted APGD with the DLR loss alone (9 target classes, 100 iterations each);
  worst          robust only if it survives pgd100x5, apgd-ce and apgd-t;
  transfer       PGD-20 examples made on SOURCE (an AT model of the same seed), classified by TARGET (with
                 the start draws of pgd20, so that SOURCE = TARGET gives pgd20's count).

A model whose PGD-20 accuracy hides gradient masking loses much more to the stronger white-box attacks
than other models do, and does better against them than against the transfer attack. Every attack is
seeded (SEED + its index), so a rerun gives the same counts. One torch thread unless --threads says more.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common.argtypes import OneLineParser, positive_int
from common.errors import UserError

SEED = 20240601
ATTACKS = ("natural", "pgd20", "pgd100x5", "apgd-ce", "apgd-t", "worst", "transfer")


def load_model(path: str, device):
    """A checkpoint of this code as a model in eval mode, and its recorded command line."""
    from models.zoo import build_model
    from runner.infra.checkpoint import load_checkpoint, load_model_state
    ckpt = load_checkpoint(path, device)
    args = ckpt.get("args")
    if not args:
        raise UserError(f"{path} carries no record of its run (a bare state dict): name a checkpoint of this code")
    from runner.data.datasets import DATASETS
    data = DATASETS[args["data"]]
    model = build_model(args["model"], data.classes, image_size=data.image_size).to(device)
    load_model_state(model, ckpt, path)
    return model.eval(), args


def attack_images(args: dict, data_dir: str):
    """The run's AutoAttack images: --aa-subset of its --test-subset, as its evaluation chose them."""
    import torch

    from runner.data.sources import load_splits
    from runner.data.split import subset_indices
    _, test = load_splits(args["data"], data_dir, download=False, test_subset=args.get("test_subset"),
                          need_train=False)
    pick = subset_indices(len(test), args.get("aa_subset"))
    x = torch.from_numpy(test.images[pick]).permute(0, 3, 1, 2).float().div(255)
    return x.contiguous(), torch.from_numpy(test.labels[pick])


def correct(model, x, y, batch: int = 250):
    """A bool per image: the model's prediction on x is y."""
    import torch
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(x), batch)])


def pgd_rounds(model, x, y, eps: float, step: float, steps: int, restarts: int, seed: int, batch: int = 250,
               source=None):
    """A bool per image: still classified correctly by `model` after every one of `restarts` PGD-`steps` runs,
    each made on `source` (default: `model` itself; another model: a transfer attack)."""
    import torch

    from attacks.common import uniform_clipped_start
    from attacks.pgd import pgd
    alive = torch.ones(len(x), dtype=torch.bool)
    for r in range(restarts):
        torch.manual_seed(seed + r)
        for i in range(0, len(x), batch):
            xa = pgd(source or model, x[i:i + batch], y[i:i + batch], eps, step, steps, start=uniform_clipped_start)
            alive[i:i + batch] &= correct(model, xa, y[i:i + batch])
    return alive


def apgd(model, x, y, eps: float, which: str, classes: int, seed: int):
    """A bool per image: still correct after AutoAttack's APGD-CE or APGD-T alone (pyautoattack)."""
    import pyautoattack
    attack = pyautoattack.AutoAttack(model, norm="Linf", eps=eps, version="custom", attacks=[which], seed=seed,
                                     device=x.device)
    attack.apgd.n_restarts = attack.apgd_targeted.n_restarts = 1     # as in the standard version
    attack.apgd_targeted.n_target_classes = min(9, classes - 1)
    x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=250)
    return correct(model, x_adv, y)


def check(target: str, source: str, data_dir: str) -> dict:
    """Every attack of the module doc on TARGET's AutoAttack images: counts out of `images`."""
    import torch

    from runner.infra.provenance import git_commit, project_path, source_changes
    device = torch.device("cpu")
    model, args = load_model(target, device)
    donor, donor_args = load_model(source, device)
    if (donor_args["data"], donor_args.get("test_subset")) != (args["data"], args.get("test_subset")):
        raise UserError(f"{source} was evaluated on other data than {target}: give a source of the same data")
    x, y = attack_images(args, data_dir)
    eps, step = args.get("eval_epsilon", 8 / 255), args["step_size"]
    classes = int(model(x[:1]).shape[1])
    seconds, alive = {}, {}

    def timed(name, fn):
        t0 = time.perf_counter()
        alive[name] = fn()
        seconds[name] = time.perf_counter() - t0

    timed("natural", lambda: correct(model, x, y))
    timed("pgd20", lambda: pgd_rounds(model, x, y, eps, step, 20, 1, SEED))
    timed("pgd100x5", lambda: pgd_rounds(model, x, y, eps, step, 100, 5, SEED + 10))
    timed("apgd-ce", lambda: apgd(model, x, y, eps, "apgd-ce", classes, SEED + 20))
    timed("apgd-t", lambda: apgd(model, x, y, eps, "apgd-t", classes, SEED + 30))
    alive["worst"] = alive["pgd100x5"] & alive["apgd-ce"] & alive["apgd-t"]
    # pgd20's start draws: with SOURCE = TARGET, transfer is pgd20
    timed("transfer", lambda: pgd_rounds(model, x, y, eps, step, 20, 1, SEED, source=donor))
    return {"target": project_path(target), "source": project_path(source), "images": len(y),
            "counts": {k: int(alive[k].sum()) for k in ATTACKS},
            "accuracy": {k: round(100.0 * float(alive[k].float().mean()), 2) for k in ATTACKS},
            "seconds": seconds, "epsilon": eps, "step_size": step, "seed": SEED,
            "threads": torch.get_num_threads(), "git_commit": git_commit(), "source_changes": source_changes()}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m studies.masking", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="the checkpoint checked")
    p.add_argument("--source", required=True, help="the checkpoint the transfer attack is made on")
    p.add_argument("--data-dir", required=True, help="the data the runs were evaluated on")
    p.add_argument("--out", type=Path, required=True, help="the results JSON (refused if it exists)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    for path in (args.target, args.source):
        if not Path(path).is_file():
            p.error(f"no checkpoint at {path}")
    if args.out.exists():
        p.error(f"{args.out} exists: choose another --out or remove it")
    import torch
    torch.set_num_threads(args.threads)
    try:
        result = check(args.target, args.source, args.data_dir)
    except UserError as exc:
        p.error(str(exc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(" | ".join(f"{k} {v:.2f}%" for k, v in result["accuracy"].items()), f"({result['images']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
