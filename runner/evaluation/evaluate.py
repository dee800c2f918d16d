"""Natural, PGD-20, MMA and AutoAttack accuracy, printed in the official format.

Each test image's random start (PGD-20, MMA, the cam-info draws) comes from its own stream, keyed by
its index in the test split (--eval-seeding image, common.rng.image_uniform); AutoAttack seeds itself
per call and runs on fixed chunks of AA_CHUNK images. So an accuracy depends only on the weights and
the test images, not on the batch size, the torchrun ranks or what ran before it, and an interrupted
evaluation continues at the next batch with the same result (`EvalProgress`, a JSON file beside the
results JSON). --eval-seeding batch seeds batch i of an attack instead (runs made before the per-image
streams; the CPU-scale study keeps it).
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from attacks.autoattack import autoattack
from attacks.autoattack_standard import autoattack_standard
from attacks.common import uniform_clipped_start
from attacks.mma import mma
from attacks.pgd import pgd
from models.zoo import eval_mode
from runner.data.loaders import on_device
from runner.data.split import subset_indices
from runner.evaluation import EvalSettings
from runner.infra.distributed import Dist
from runner.infra.files import write_json
from runner.infra.interrupt import Interrupted, StopRequest
from common.rng import EVAL_BATCH_SEEDS, image_uniform, seeded
from runner.registry import AUTOATTACKS, STUDY_EVALS

HEADERS = {"pgd20": "PGD", "mma": "MMA", "aa": "AA", "aa-standard": "AA-standard"}
EVAL_STEPS = 20


def header(name: str) -> str:
    """An evaluation's line in the log: the built-in's, or the study's (runner.registry.STUDY_EVALS)."""
    return HEADERS[name] if name in HEADERS else STUDY_EVALS[name].header


def on_subset(name: str) -> bool:
    """Whether the evaluation runs on the --aa-subset images only (the slow ones)."""
    return name in AUTOATTACKS or (name in STUDY_EVALS and STUDY_EVALS[name].on_subset)


def global_draw(device: torch.device):
    """draw(k, shape): the k-th U[0, 1) draw of a batch from the global RNG, in order (the batch-seeded scheme)."""
    return lambda k, shape: torch.rand(shape, device=device)


def _adversary(name: str, s: EvalSettings, num_classes: int):
    eps = s.eval_epsilon
    # Both start in +-eps clipped to [0, 1]: torchattacks' PGD (the official evaluation) and the
    # Madry start of the official mma.
    # `draw(k, shape)`: the batch's k-th U[0, 1) draw (per image, or from the seeded batch stream).
    if name == "pgd20":
        return lambda m, x, y, draw: pgd(m, x, y, eps, s.step_size, EVAL_STEPS, start=uniform_clipped_start,
                                         start_noise=draw(0, x.shape))
    if name == "mma":
        return lambda m, x, y, draw: mma(m, x, y, eps, s.step_size, EVAL_STEPS, start=uniform_clipped_start, k=3,
                                         start_noise=draw(0, x.shape))
    # AutoAttack seeds itself (seed 0) per call: under --eval-seeding image it is called on fixed chunks
    # of AA_CHUNK images, whatever --batch-size (see _evaluate).
    if name == "aa":
        return lambda m, x, y, draw: autoattack(m, x, y, eps, num_classes=num_classes, seed=0)
    if name == "aa-standard":
        return lambda m, x, y, draw: autoattack_standard(m, x, y, eps, num_classes=num_classes, seed=0)
    if name in STUDY_EVALS:     # counts, not adversarial images: see _attack_batches; `extras`: the batch's
        return lambda m, x, y, draw, extras: STUDY_EVALS[name].counts(m, x, y, s, draw, extras)
    raise ValueError(name)


# AutoAttack's batches under --eval-seeding image: fixed chunks of the evaluated images (the official
# evaluation's batch), so that its counts do not depend on --batch-size or the ranks.
AA_CHUNK = 128


def image_ids(dataset) -> torch.Tensor:
    """Each evaluated image's index in the whole test split (its per-image stream's id)."""
    if isinstance(dataset, Subset):
        return image_ids(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    ids = getattr(dataset, "ids", None)
    return ids if ids is not None else torch.arange(len(dataset))


def _count(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


def accuracy_line(correct: int, total: int, robust: int | None = None) -> str:
    line = f"Test: Accuracy: {correct}/{total} ({100.0 * correct / total:.2f}%)"
    if robust is not None:
        line += f", Robust Accuracy: {robust}/{total} ({100.0 * robust / total:.2f}%)"
    return line


class EvalProgress:
    """The per-batch counts (robust, clean) of each attack evaluation, rewritten atomically to `path`
    after every batch (under torchrun, after every round of one batch per rank). `key` names the
    weights and settings they belong to; a file with another key is left out (and replaced)."""

    def __init__(self, path: Path, key: dict) -> None:
        self.path, self.key = path, key
        self.batches: dict[str, list[list[int]]] = {}
        self.seconds: dict[str, float] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                data = None
            if isinstance(data, dict) and data.get("key") == key:
                self.batches, self.seconds = data["batches"], data.get("seconds", {})
                done = ", ".join(f"{header(n)} {len(b)} batches" for n, b in self.batches.items())
                print(f"evaluation continues from {path} ({done or 'nothing done yet'})", flush=True)
            else:
                print(f"evaluation progress in {path} belongs to other weights or settings: not used", flush=True)

    def done(self, name: str) -> list[list[int]]:
        return self.batches.setdefault(name, [])

    def write(self) -> None:
        write_json({"key": self.key, "batches": self.batches, "seconds": self.seconds}, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def evaluate(model: nn.Module, loader: DataLoader, which: list[str], s: EvalSettings,
             num_classes: int, progress: bool = False, verbose: bool = True,
             record: EvalProgress | None = None, stop: StopRequest | None = None, dist: Dist = Dist()) -> dict:
    """Accuracies in percent, counts and seconds for each requested evaluation, with the model in eval
    mode (its mode is restored afterwards). With `record`, finished batches are kept and skipped;
    with `stop`, a signal ends the evaluation after the current batch (Interrupted). Under torchrun
    the batches are dealt out to the ranks (batch i to rank i mod world) and the counts summed: the
    same batches and per-batch seeds as one process, so the same numbers."""
    with eval_mode(model):
        return _evaluate(model, loader, which, s, num_classes, progress, verbose, record, stop, dist)


def _evaluate(model: nn.Module, loader: DataLoader, which: list[str], s: EvalSettings,
              num_classes: int, progress: bool, verbose: bool, record: EvalProgress | None,
              stop: StopRequest | None, dist: Dist) -> dict:
    device = next(model.parameters()).device
    verbose = verbose and dist.main
    total = len(loader.dataset)
    out: dict = {"total": total, "counts": {}, "seconds": {}}
    t0 = time.perf_counter()
    natural = torch.zeros(1, dtype=torch.long, device=device)
    for i, (x, y, *_) in enumerate(tqdm(loader, desc="natural", disable=not progress, leave=False)):
        if i % dist.world == dist.rank:
            natural += _count(model, x.to(device), y.to(device))
    dist.sum_(natural)
    natural = int(natural.item())
    out["seconds"]["natural"] = time.perf_counter() - t0
    if "natural" in which:
        out["natural"] = 100.0 * natural / total
        out["counts"]["natural"] = natural
        if verbose:
            print(accuracy_line(natural, total), flush=True)
    out["images"] = {name: total for name in which}
    for name in (w for w in which if w != "natural"):
        attack = _adversary(name, s, num_classes)
        # AutoAttack (both) on a fixed subset (the same for every run and seed) when --aa-subset asks for one.
        subset = on_subset(name) and bool(s.aa_subset) and s.aa_subset < total
        scheme = s.eval_seeding
        size = AA_CHUNK if name in AUTOATTACKS and scheme == "image" else loader.batch_size
        dataset = Subset(loader.dataset, subset_indices(total, s.aa_subset).tolist()) if subset else loader.dataset
        these = loader if dataset is loader.dataset and size == loader.batch_size else \
            DataLoader(dataset, batch_size=size)
        n = s.aa_subset if subset else total
        done = record.done(name) if record else []         # [robust, clean] per batch, in batch order
        spent = record.seconds if record else {}            # seconds, earlier starts included
        batches = len(these)
        bar = tqdm(these, desc=name, disable=not progress, leave=False)
        data = iter(bar)
        for _ in range(len(done)):
            next(data)                # counted before an interruption
        # The bar is advanced by hand (never exhausted), so it is closed by hand: its line is cleared
        # before the accuracy is printed.
        with contextlib.closing(bar):
            _attack_batches(model, attack, name, data, done, batches, device, record, spent, stop, dist, subset,
                            scheme, image_ids(dataset), size)
        out["seconds"][name] = spent.get(name, 0.0)
        if name in STUDY_EVALS:
            _study_result(out, name, done, n, s, loader.dataset[0], verbose)
            continue
        robust = sum(r for r, _ in done)
        clean = sum(c for _, c in done) if subset else natural
        out[name] = 100.0 * robust / n
        out["counts"][name] = robust
        out["images"][name] = n
        if verbose:
            print(f"{header(name)}{'=' * 61}", flush=True)
            print(accuracy_line(clean, n, robust), flush=True)
    return out


def _study_result(out: dict, name: str, done: list[list], n: int, s: EvalSettings, first: tuple,
                  verbose: bool) -> None:
    """A study's evaluation: its summary of the batches' column sums, the sums and the image count."""
    study, columns = STUDY_EVALS[name], [sum(col) for col in zip(*done)]
    extras = tuple(first[2]) if len(first) > 2 else ()     # the names of the per-image extras the data give
    out[name] = study.summary(columns, n, s, first[0].numel(), extras)
    out["counts"][name], out["images"][name] = columns, n
    if verbose:
        print(study.describe(out[name], s, n, extras), flush=True)


def _attack_batches(model: nn.Module, attack, name: str, data, done: list, batches: int, device: torch.device,
                    record: EvalProgress | None, spent: dict, stop: StopRequest | None, dist: Dist,
                    subset: bool, scheme: str, ids: torch.Tensor, batch_size: int) -> None:
    """The remaining batches of one attack evaluation, one round of `world` batches at a time; batch i
    holds the images ids[i * batch_size:][:len]."""
    while len(done) < batches:
        # One round: the next `world` batches, one per rank; every rank then records all of them.
        first = len(done)
        group = [next(data) for _ in range(min(dist.world, batches - first))]
        t0 = time.perf_counter()
        mine = None
        if dist.rank < len(group):
            i = first + dist.rank
            x, y, extras = on_device(group[dist.rank], device)      # extras: the per-image extras by name
            seed = EVAL_BATCH_SEEDS[name]
            if scheme == "batch":      # the batch's own seeded stream, drawn in order
                stream, draw = seed + i, global_draw(device)
            else:                       # each image's own stream (common.rng.image_uniform)
                mine_ids = ids[i * batch_size:][:len(y)].to(device)
                stream, draw = seed, lambda k, shape: image_uniform(mine_ids, tuple(shape[1:]), seed + k)
            with seeded(stream, device):
                if name in STUDY_EVALS:
                    mine = attack(model, x, y, draw, extras)  # its own counts (runner.registry.StudyEvaluation)
                else:
                    mine = [_count(model, attack(model, x, y, draw), y), _count(model, x, y) if subset else 0]
        done.extend(dist.gather(mine)[:len(group)])
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        if record and dist.main:
            record.write()
        if stop is not None:
            stop.test_point("eval", name, len(done) - 1)
            signum = stop.agreed(dist, device)
            if signum and len(done) < batches:
                raise Interrupted(signum, f"during the {header(name)} evaluation after batch {len(done)} of "
                                          f"{batches}", [])
