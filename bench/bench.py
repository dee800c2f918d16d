"""Time one training epoch (after one untimed epoch) of AT, PART, PART-T and PART-M for each training
precision (fp32, bf16), the PGD-20 evaluation and AutoAttack on the current device, and compare with
the anchors of issues 4 and 10. The table is printed as markdown, ready for bench/RESULTS.md.

    python -m bench.bench --data-dir ../shared/data/cifar10-jpeg.zip            # on a GPU
    python -m bench.bench --model smallcnn --train-subset 256 --test-subset 64   # a quick CPU try

Times on a CPU are not speed results; the anchors are for one H100 at batch 128.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.data import DataLoader

from models import MODEL_NAMES
from models.zoo import eval_mode
from common.argtypes import OneLineParser, positive_int
from runner.cli.args import get_args
from runner.data.sources import load_splits
from runner.data.split import Split
from runner.evaluation import EvalSettings
from runner.evaluation.evaluate import evaluate
from runner.training.run import prepare
from runner.training.trainer import Trainer

# Seconds, measured on one NVIDIA H100 80GB (torch 2.11), ResNet-18, CIFAR-10, batch 128; source:
# issue 4 ("Speed: a PART epoch in 12 seconds on one H100"). Keys: what this script times.
ANCHORS = {
    "AT epoch": ("official code, standard AT epoch (torchattacks PGD-10)", 48.5),
    "PART epoch": ("official code, PART epoch = attack/training 66.5 + CAM pass 593.7", 660.0),
    "PART-T epoch": ("official code, PART-T epoch = 80.8 + 593.7", 675.0),
    "PGD-20 eval": ("official code, PGD-20 evaluation of the 10,000 test images", 15.2),
}
# Issue 10's goals per run on one H100 (s): a PART epoch <= 12 in bf16 (<= 21 in fp32), AT <= 11,
# PGD-20 on the 10,000 test images <= 2.
TARGETS = {("PART epoch", "bf16"): 12, ("PART epoch", "fp32"): 21, ("AT epoch", "bf16"): 11,
           ("PGD-20 eval", "fp32"): 2}
CASES = (("AT epoch", "part", ["--no-reweight"]), ("PART epoch", "part", []),
         ("PART-T epoch", "part_t", []), ("PART-M epoch", "part_m", []))
# The compute floor of an epoch: the model's own passes a batch needs, as (forward + backward, forward
# only), given the attack's steps S. AT: S attack steps + the training step. PART adds the CAM (one
# forward, one backward to the features). PART-T: the TRADES attack's clean target (a forward), S
# steps, the objective's three forwards and one backward through them, the CAM. PART-M: S steps, the
# objective's two forwards and backward, the CAM.
PASSES = {"AT epoch": lambda s: (s + 1, 0), "PART epoch": lambda s: (s + 2, 0),
          "PART-T epoch": lambda s: (s + 4, 1), "PART-M epoch": lambda s: (s + 3, 0)}


def pass_seconds(trainer: Trainer, repeats: int = 5) -> tuple[float, float]:
    """Seconds of one forward + input-gradient backward, and of one forward, of the training model
    alone (its precision, its device) at the per-process batch, model in eval mode as in the attacks."""
    model, device = trainer.attack_model, trainer.device
    x = torch.rand(trainer.rank_batch, 3, trainer.image_size, trainer.image_size, device=device)
    y = torch.randint(0, trainer.num_classes, (len(x),), device=device)

    def both() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(model(xr), y), xr)

    def forward() -> None:
        with torch.no_grad():
            model(x)
    times = []
    with eval_mode(trainer.model):
        for fn in (both, forward):
            fn()                                   # untimed: lazy initialisation
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            _sync(device)
            times.append((time.perf_counter() - t0) / repeats)
    return times[0], times[1]


def floor_seconds(what: str, trainer: Trainer, batches: int) -> float:
    """The epoch's compute floor: its passes of the model alone (PASSES), timed by pass_seconds."""
    fb, f = PASSES[what](trainer.settings.num_steps)
    t_fb, t_f = pass_seconds(trainer)
    return batches * (fb * t_fb + f * t_f)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epoch(key: str, flags: list[str], splits: tuple[Split, Split] | None = None
               ) -> tuple[float, Trainer, DataLoader, argparse.Namespace, int, int]:
    """Seconds of the second PART-phase epoch of method `key` (the first is untimed), and its batches.
    `splits`: the data already loaded (else loaded from the flags)."""
    args = get_args(key, flags + ["--warm-up", "0", "--epochs", "2", "--no-progress", "--log-interval", "100000"])
    trainer, test_loader, train_split, _ = prepare(args, splits=splits)
    trainer.train_epoch(1)                  # untimed: lazy initialisation, cudnn autotuning
    _sync(trainer.device)
    t0 = time.perf_counter()
    trainer.train_epoch(2)
    _sync(trainer.device)
    return time.perf_counter() - t0, trainer, test_loader, args, len(train_split), len(trainer.loader(0))


# One row of the table: what, precision, images, seconds, floor seconds (None: no floor).
Row = tuple[str, str, float, int, "float | None"]


def header(device: torch.device, model: str, batch: int, loader: str, graphs: bool) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (not a speed result)"
    return (f"device: {name} | torch {torch.__version__} | {time.strftime('%Y-%m-%d')} | model {model} | "
            f"batch {batch} | loader {loader} | CUDA graphs {'on' if device.type == 'cuda' and graphs else 'off'}")


def table(rows: list[Row], comparable: bool) -> list[str]:
    """The markdown table of `rows`, with the anchors and targets; ratios to the anchors only where
    `comparable` (ResNet-18 at batch 128) and the run is full size."""
    lines = ["| what | precision | images | seconds | floor (s) | × floor | anchor (s) | anchor / ours | target (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for what, precision, seconds, images, floor in rows:
        anchor = ANCHORS.get(what)
        full = images == (10_000 if what == "PGD-20 eval" else 50_000)
        ratio = f"{anchor[1] / seconds:.1f}x" if anchor and comparable and full else "–"
        target = TARGETS.get((what, precision), "–")
        floors = f"{floor:.2f} | {seconds / floor:.2f}" if floor else "– | –"
        lines.append(f"| {what} | {precision} | {images} | {seconds:.2f} | {floors} | "
                     f"{anchor[1] if anchor else '–'} | {ratio} | {target} |")
    lines.append("floor: the same number of forward + backward passes of the model alone at the same batch and "
                 "precision on the same device (bench.PASSES); × floor is the epoch over it")
    lines.append("anchors (one H100, ResNet-18, batch 128, full CIFAR-10; ratios only for runs of that size): "
                 + "; ".join(f"{k}: {v[0]}" for k, v in ANCHORS.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bench.bench", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--model", default="resnet", choices=MODEL_NAMES)
    p.add_argument("--channels-last", action="store_true", help="the model in channels_last memory format")
    p.add_argument("--cases", default="AT,PART,PART-T,PART-M", help="comma list of the epochs to time")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--loader", default="auto", choices=("auto", "torch", "resident"))
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of training precisions to time")
    p.add_argument("--no-cuda-graphs", action="store_true")
    p.add_argument("--train-subset", type=positive_int, default=None)
    p.add_argument("--test-subset", type=positive_int, default=None)
    p.add_argument("--aa-subset", type=positive_int, default=1000, help="test images for the AutoAttack timing")
    p.add_argument("--no-aa", action="store_true", help="skip the AutoAttack timing")
    b = p.parse_args(argv)
    common = ["--data-dir", b.data_dir, "--model", b.model, "--batch-size", str(b.batch_size), "--device", b.device,
              "--loader", b.loader, "--no-download"] + (["--no-cuda-graphs"] if b.no_cuda_graphs else []) \
        + (["--channels-last"] if b.channels_last else [])
    cases = [c for c in CASES if c[0].removesuffix(" epoch") in b.cases.split(",")]
    if not cases:
        p.error(f"invalid --cases {b.cases!r}: a comma list of AT,PART,PART-T,PART-M")
    precisions = [q.strip() for q in b.precisions.split(",") if q.strip()]
    if not precisions or any(q not in ("fp32", "bf16") for q in precisions):
        p.error(f"invalid --precisions {b.precisions!r}: a comma list of fp32,bf16")
    common += ["--train-subset", str(b.train_subset)] if b.train_subset else []
    common += ["--test-subset", str(b.test_subset)] if b.test_subset else []
    splits = load_splits("CIFAR10", b.data_dir, False, b.train_subset, b.test_subset)
    rows: list[Row] = []
    for precision in precisions:
        for name, key, flags in cases:
            seconds, trainer, test_loader, args, images, batches = time_epoch(
                key, common + flags + ["--precision", precision], splits)
            rows.append((name, precision, seconds, images, floor_seconds(name, trainer, batches)))
    device = trainer.device
    ev = evaluate(trainer.model, test_loader, ["pgd20"], EvalSettings.from_args(args), trainer.num_classes,
                  verbose=False)
    rows.append(("PGD-20 eval", "fp32", ev["seconds"]["pgd20"], ev["total"], None))
    if not b.no_aa:
        aa_args = get_args("part", common + ["--test-subset", str(b.aa_subset), "--no-progress"])
        _, aa_loader, _, _ = prepare(aa_args, splits=(splits[0], splits[1].subset(b.aa_subset)))
        ev = evaluate(trainer.model, aa_loader, ["aa"], EvalSettings.from_args(aa_args), trainer.num_classes, verbose=False)
        rows.append(("AutoAttack eval", "fp32", ev["seconds"]["aa"], ev["total"], None))
    print(header(device, b.model + (" (channels_last)" if b.channels_last else ""), b.batch_size, trainer.loader_kind,
                 not b.no_cuda_graphs))
    print("\n".join(table(rows, b.model == "resnet" and b.batch_size == 128)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
