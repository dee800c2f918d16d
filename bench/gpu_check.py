"""Every GPU check in one command, inside a time budget (default 480 s: about 8 minutes on one H100,
so that it fits a 15-minute lease with the machine's start):

  1. the `cuda` test tier (`python -m pytest -m cuda`);
  2. the bench rows: AT and PART epochs on full CIFAR-10 (ResNet-18, batch 128), fp32 and bf16, each
     with its compute floor (bench.PASSES);
  3. PGD-20 on the 10,000 test images;
  4. as much of an AT + PART pair as the time left allows: a short schedule (epochs planned from the
     epoch times of step 2; a quarter of them warm-up, the last at a tenth of the learning rate), each
     run evaluated (natural, PGD-20, AutoAttack on a fixed subset).

Writes DIR/report.md (the device, every step's outcome and seconds, the bench table, the pair's
accuracies) and DIR/at.json, DIR/part.json with their logs. A step the time left cannot hold is
skipped and the report says so; a step that fails is reported (its error's last lines) and the next
runs; a run still going at the budget's end is stopped (SIGTERM: it checkpoints and exits) and
reported as stopped. Without CUDA only --dry-run runs: tiny sizes on the CPU, CUDA-only parts skipped
and said so (the suite tests it).

    source .gpu/setup.sh && python -m bench.gpu_check --data-dir $PART_DATA --out results/gpu-check
    python -m bench.gpu_check --dry-run --data-dir ../shared/data/cifar10-jpeg.zip --out /tmp/gpu-check
"""
from __future__ import annotations

import argparse
import json
import math
import re
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.bench import CASES, Row, floor_seconds, header, table, time_epoch
from common.argtypes import OneLineParser, positive_int
from runner.data.sources import load_splits
from runner.evaluation import EvalSettings
from runner.evaluation.evaluate import evaluate
from common.errors import UserError

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scale:
    """What the check runs on: the full setting on a GPU, tiny sizes in the CPU dry run."""
    model: str
    train_subset: int | None
    test_subset: int | None
    aa_subset: int
    precisions: tuple[str, ...]
    max_pair_epochs: int
    run_start_s: float      # a training process's start before its first epoch (imports, data, capture)


# The pair's AutoAttack (torchattacks, as the official code) took 22-28 s per batch of 128 on an H200
# after 8 epochs: one batch is what the budget holds.
FULL = Scale("resnet", None, None, 128, ("fp32", "bf16"), 15, 25.0)
# bf16 on a CPU is emulated where the CPU lacks bf16 instructions (9x slower here): fp32 only.
DRY = Scale("smallcnn-bn", 64, 32, 4, ("fp32",), 2, 10.0)
BENCH_CASES = [c for c in CASES if c[0] in ("AT epoch", "PART epoch")]
TIER_TIMEOUT_S = 180        # the tier's own limit inside the budget
REPORT_S = 5                # kept back for writing the report


@dataclass
class Check:
    """The budget's clock and the report's sections."""
    budget_s: float
    out: Path
    checkpoints: Path       # the pair's weights (never in the report's folder)
    start: float = field(default_factory=time.monotonic)
    sections: list[tuple[str, str, float, list[str]]] = field(default_factory=list)

    def left(self) -> float:
        return self.budget_s - REPORT_S - (time.monotonic() - self.start)

    def step(self, title: str, fn, *a) -> object:
        """Run fn(*a) -> (outcome, lines, value); a failure becomes the outcome 'failed' with its error."""
        t0 = time.monotonic()
        try:
            outcome, lines, value = fn(*a)
        except Exception as exc:    # a failing step is reported, and the next runs
            tail = traceback.format_exc().strip().splitlines()[-8:]
            outcome, lines, value = f"failed: {type(exc).__name__}: {exc}", ["```", *tail, "```"], None
        self.sections.append((title, outcome, time.monotonic() - t0, lines))
        print(f"[gpu_check] {title}: {outcome} ({time.monotonic() - t0:.0f} s; {self.left():.0f} s left)", flush=True)
        return value

    def write(self, head: list[str]) -> Path:
        lines = [*head, "", "| step | outcome | seconds |", "|---|---|---|"]
        lines += [f"| {t} | {o} | {s:.0f} |" for t, o, s, _ in self.sections]
        for title, _, _, body in self.sections:
            if body:
                lines += ["", f"## {title}", "", *body]
        path = self.out / "report.md"
        path.write_text("\n".join(lines) + "\n")
        return path


def cuda_tier(check: Check, cuda: bool):
    if not cuda:
        return "skipped: no CUDA device (the tier's tests need one)", [], None
    timeout = min(TIER_TIMEOUT_S, check.left() - 60)
    if timeout < 60:
        return "skipped: the budget left cannot hold it", [], None
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-rfEs", "-p", "no:cacheprovider",
                              "--durations", "5"],
                             cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return f"stopped at its {timeout:.0f} s limit", ["```", *text.strip().splitlines()[-15:], "```"], None
    text = (out.stdout + out.stderr).strip().splitlines()
    summary = next((ln.strip("= ") for ln in reversed(text) if re.search(r"\d+ (passed|failed|error)", ln)),
                   "no summary")
    body = ["```", *text[-(25 if out.returncode else 12):], "```"]     # failures, or the slowest tests
    return ("passed: " if out.returncode == 0 else "FAILED: ") + summary, body, None


def bench_rows(check: Check, scale: Scale, common: list[str], splits):
    rows: list[Row] = []
    notes, trainer, test_loader, args, last = [], None, None, None, 30.0
    for precision in scale.precisions:
        for name, key, flags in BENCH_CASES:
            if check.left() < 3 * last + 60:
                notes.append(f"- {name} {precision}: skipped, the budget left cannot hold it")
                continue
            seconds, trainer, test_loader, args, images, batches = time_epoch(
                key, common + flags + ["--precision", precision], splits)
            rows.append((name, precision, seconds, images, floor_seconds(name, trainer, batches)))
            last = seconds
    if "bf16" not in scale.precisions:
        notes.append("- bf16: not timed in the dry run (emulated on CPUs without bf16 instructions)")
    if trainer is None:
        return "skipped: the budget left cannot hold an epoch", notes, None
    lines = [header(trainer.device, scale.model, args.batch_size, trainer.loader_kind, not args.no_cuda_graphs), "",
             *table(rows, scale.model == "resnet" and args.batch_size == 128), *([""] + notes if notes else [])]
    return f"{len(rows)} epochs timed", lines, (rows, trainer, test_loader, args)


def pgd20(check: Check, timed):
    if timed is None:
        return "skipped: no model from the bench step", [], None
    rows, trainer, test_loader, args = timed
    ev = evaluate(trainer.model, test_loader, ["pgd20"], EvalSettings.from_args(args), trainer.num_classes,
                  verbose=False)
    row = ("PGD-20 eval", "fp32", ev["seconds"]["pgd20"], ev["total"], None)
    line = (f"PGD-20 (fp32) of the bench's last model (2 {args.precision} epochs) on {ev['total']} test images: "
            f"{ev['seconds']['pgd20']:.2f} s (issue 10's goal on one H100: <= 2 s; official code 15.2 s)")
    return f"{ev['seconds']['pgd20']:.2f} s on {ev['total']} images", [line, "", *table([row], True)[:3]], row


def plan_pair(left: float, scale: Scale, epoch_s: dict[str, float], eval_s: float) -> int:
    """Epochs per run so that both runs (start, epochs, evaluation) fit `left` seconds, with a 20 % margin."""
    per_run = left / 2 / 1.2 - scale.run_start_s - eval_s
    return min(scale.max_pair_epochs, max(0, math.floor(per_run / max(epoch_s.values()))))


def pair(check: Check, scale: Scale, b: argparse.Namespace, timed, pgd_row):
    precision = "bf16" if "bf16" in scale.precisions else "fp32"
    epoch_s = {n: s for n, p, s, _, _ in (timed[0] if timed else []) if p == precision}
    if len(epoch_s) < 2:
        return f"skipped: no {precision} epoch times from the bench step to plan it", [], None
    pgd_s = pgd_row[2] if pgd_row else 10.0
    eval_s = 2 * pgd_s + (30.0 if b.device_type == "cuda" else 10.0)   # natural + PGD-20 + AutoAttack on a subset
    epochs = plan_pair(check.left(), scale, epoch_s, eval_s)
    if epochs < 2:
        return f"skipped: {check.left():.0f} s left hold fewer than 2 epochs per run", [], None
    warm_up = max(1, epochs // 4)
    flags = ["--data-dir", b.data_dir, "--model", scale.model, "--epochs", str(epochs), "--warm-up", str(warm_up),
             "--adjust-first", str(epochs - warm_up), "--precision", precision, "--seed", "1", "--no-progress",
             "--no-download", "--eval", "natural,pgd20,aa", "--aa-subset", str(scale.aa_subset), "--overwrite"]
    flags += ["--train-subset", str(scale.train_subset)] if scale.train_subset else []
    flags += ["--test-subset", str(scale.test_subset)] if scale.test_subset else []
    flags += ["--device", "cpu"] if b.device_type == "cpu" else []
    lines = [f"ResNet-18 at CIFAR-10 scale, a short schedule planned from the bench's {precision} epochs: "
             f"{epochs} epochs, {warm_up} of them AT warm-up, lr 0.01 (the official) and a tenth of it for the "
             f"last, seed 1; natural and "
             f"PGD-20 on {'all' if not scale.test_subset else scale.test_subset} test images, AutoAttack "
             f"(torchattacks) on {scale.aa_subset}. Not the paper's schedule (80 epochs)." if scale is FULL else
             f"Dry run: {scale.model}, {epochs} epochs on {scale.train_subset} images, natural and PGD-20 on "
             f"{scale.test_subset} test images, AutoAttack on {scale.aa_subset} (a rehearsal, not a result).",
             "", "| run | outcome | epochs | seconds | training s / epoch | natural (% of images) | PGD-20 (% of images) "
             "| AA (% of images) |",
             "|---|---|---|---|---|---|---|---|"]
    done = 0
    for run, extra in (("at", ["--no-reweight"]), ("part", [])):
        outcome, res, seconds = _train(check, run, flags + extra, left_share=1 if run == "part" else 2)
        # Each accuracy with the number of test images it is over (AutoAttack: a smaller fixed subset).
        cells = [f"{res[k]:.2f} of {res['images'][k]}" if res and res.get(k) is not None else "–"
                 for k in ("natural", "pgd20", "aa")]
        per_epoch = (f"{sum(v for k, v in res['seconds'].items() if k.startswith('train')) / res['epochs_done']:.1f}"
                     if res else "–")
        lines.append(f"| {run.upper()} | {outcome} | {(res or {}).get('epochs_done', '–')} | {seconds:.0f} | "
                     f"{per_epoch} | " + " | ".join(cells) + " |")
        done += outcome == "finished"
    return f"{done} of 2 runs finished ({epochs} epochs each)", lines, None


def _train(check: Check, run: str, flags: list[str], left_share: int) -> tuple[str, dict | None, float]:
    """Run train_eval_part.py into DIR/<run>.json (+ .log) until it ends or its share of the time left
    is spent; then SIGTERM (it checkpoints and exits) and report it stopped."""
    out = check.out
    cmd = [sys.executable, str(REPO / "train_eval_part.py"), *flags, "--model-dir", str(check.checkpoints / run),
           "--results", str(out / f"{run}.json")]
    deadline = time.monotonic() + check.left() / left_share
    t0 = time.monotonic()
    with open(out / f"{run}.log", "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return "stopped at the budget", None, time.monotonic() - t0
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        return f"exit code {proc.returncode} (see {run}.log)", None, seconds
    return "finished", json.loads((out / f"{run}.json").read_text()), seconds


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m bench.gpu_check", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="CIFAR-10 (the shared zip, or any layout the scripts accept)")
    p.add_argument("--out", required=True, metavar="DIR", help="where report.md and the results JSONs go")
    p.add_argument("--budget", type=positive_int, default=480, metavar="SECONDS",
                   help="wall-clock budget of the whole check (default 480)")
    p.add_argument("--checkpoint-dir", default="checkpoint/gpu-check",
                   help="the pair's weights, replaced at each check (default checkpoint/gpu-check)")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes on whatever device there is (the CPU rehearsal the suite runs)")
    b = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not b.dry_run:
        p.error("no CUDA device here; the CPU rehearsal is --dry-run")
    out = Path(b.out)
    if out.exists() and any(out.iterdir()):
        p.error(f"--out {out} is not empty; name a new folder")
    scale = DRY if b.dry_run else FULL
    b.device_type = "cuda" if cuda else "cpu"
    try:
        splits = load_splits("CIFAR10", b.data_dir, False, scale.train_subset, scale.test_subset)
    except UserError as exc:
        p.error(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    check = Check(b.budget, out, Path(b.checkpoint_dir))
    common = ["--data-dir", b.data_dir, "--model", scale.model, "--batch-size", "128", "--no-download",
              "--device", b.device_type]
    check.step("CUDA test tier", cuda_tier, check, cuda)
    timed = check.step("bench rows", bench_rows, check, scale, common, splits)
    pgd_row = check.step("PGD-20 evaluation", pgd20, check, timed)
    check.step("AT + PART pair", pair, check, scale, b, timed, pgd_row)
    name = torch.cuda.get_device_name(0) if cuda else "CPU (dry run: not a GPU result)"
    head = ["# GPU check", "", f"device: {name} | torch {torch.__version__} | {time.strftime('%Y-%m-%d %H:%M')} | "
            f"budget {b.budget} s | used {time.monotonic() - check.start:.0f} s",
            f"command: python -m bench.gpu_check {' '.join(argv if argv is not None else sys.argv[1:])}"]
    print(f"report written to {check.write(head)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
