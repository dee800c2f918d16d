"""The one trainer behind train_eval_part*.py: warm-up with the base method, then PART, then
evaluation. One log row per epoch, checkpoints every --save-freq epochs, exact --resume."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from cam.rules import RULES
from models import MODEL_DIR_NAMES
from part import METHODS, PartSettings
from part.step import BASE_METHODS, Phase, lr_at, phases, train_batch
from models.syncbn import global_batch_norm
from models.zoo import Autocast, build_model
from utils.data import (ArraySplit, AtMost, ResidentLoader, Split, load_splits, make_loader,
                        subset_indices, train_augmentation, train_loader)
from utils.evaluation import EvalSettings
from utils.evaluation.evaluate import EvalProgress, evaluate
from utils.infra.checkpoint import (check_fits, checkpoints_in, load_checkpoint, load_model_state, newest_loadable,
                                    remove_partials_before, remove_stale_temporaries, set_rng_state, weights_fingerprint)
from utils.infra.distributed import Dist, process_group
from utils.infra.errors import UserError
from utils.infra.files import write_json
from utils.infra.interrupt import Interrupted, StopRequest
from utils.infra.provenance import cores_available, cpu_model, git_commit, source_changes
from utils.infra.rng import RANK_SEED_STRIDE, Streams, set_seed
from utils.names import AUTOATTACKS, EVALS, IMAGE_SIZE, NUM_CLASSES
from utils.training.resume import (EpochStopped, Position, Tally, check_resume, check_writable, earlier_outputs, flag,
                                   progress_file, refuse_unless_overwrite, remove, restore_checkpoint, save_checkpoint)
from utils.training.awp import AWP
from utils.training.graphs import graphed
from utils.training.pairing import OfficialPairing
from utils.training.side_outputs import SideOutputs


def pick_device(choice: str, dist: Dist = Dist()) -> torch.device:
    """The device of this process: under torchrun, GPU LOCAL_RANK of its machine."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but CUDA is not available here")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank) if dist.launched else torch.device("cuda")


def default_model_dir(args: argparse.Namespace) -> str:
    return os.path.join("checkpoint", args.data, MODEL_DIR_NAMES[args.model], METHODS[args.method].dir_name)


def package_versions() -> dict[str, str]:
    """The versions of the packages the numbers depend on (the two AutoAttacks, the CAM library)."""
    from importlib.metadata import PackageNotFoundError, version
    found = {}
    for name in ("torchvision", "torchattacks", "pyautoattack", "grad-cam", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def same_weights_everywhere(dist: Dist, model: nn.Module, epoch: int) -> str:
    """The sha256 of the weights, the same on every rank. DDP keeps the replicas equal by construction;
    a diverged rank would make every later number meaningless, so they are compared once per epoch."""
    prints = dist.gather(weights_fingerprint(model))
    if len(set(prints)) > 1:
        raise RuntimeError(f"the ranks' weights differ after epoch {epoch}: {prints}")
    return prints[0]


class Trainer:
    def __init__(self, args: argparse.Namespace, model: nn.Module, train_split: Split,
                 device: torch.device, progress: bool, test_split: Split, dist: Dist = Dist()) -> None:
        self.args = args
        self.dist = dist
        # --batch-size is the global batch; each rank trains on its slice of it.
        self.rank_batch = args.batch_size // dist.world
        self.num_classes = len(test_split.classes)
        self.method = METHODS[args.method]
        self.model = model
        # Attacks and losses run through train_model (bf16 autocast if asked); the CAM, the
        # evaluation and the optimizer see the fp32 model itself.
        self.train_model = Autocast(model) if args.precision == "bf16" else model
        # The training step's forward passes go through DistributedDataParallel under torchrun (its
        # gradients are averaged over ranks); the attacks, CAM and evaluation use the module itself.
        self.step_model = None
        if dist.parallel:
            ids = [device.index] if device.type == "cuda" else None
            ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
            self.step_model = Autocast(ddp) if args.precision == "bf16" else ddp
        self.device = device
        self.progress = progress
        self.streams = Streams(args.seed, device)
        self.image_size = test_split.image_size
        augment = args.augmentation == "crop-flip"
        # --loader auto: resident on CUDA, the torch loader on the CPU (bench/RESULTS.md measures both).
        self.loader_kind = args.loader if args.loader != "auto" else "resident" if device.type == "cuda" else "torch"
        if self.loader_kind == "resident":
            # Moved to the device once; each pass only sets its shuffle seed.
            self.resident = ResidentLoader(train_split, args.batch_size, None, augment, device,
                                           rank=dist.rank, world=dist.world)
        else:
            self.train_set = ArraySplit(train_split, train_augmentation(self.image_size) if augment else None)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                         weight_decay=args.weight_decay)
        self.history: list[dict] = []
        self.resumes: list[dict] = []    # each --resume of this run: checkpoint, position, differences allowed
        # The method (part.step): its settings, its two phases; what wraps its step from outside: the
        # attack as a CUDA graph, AWP around the update, the official pairing's stored ε maps.
        self.settings = PartSettings.from_args(args)
        warm, main = phases(self.settings, BASE_METHODS[self.method.base_key])
        capture = not args.no_cuda_graphs
        self.warm_up_phase, self.main_phase = (
            Phase(p.name, graphed(p.attack, self.rank_batch, device, capture), p.objective, p.epsilon, p.part)
            for p in (warm, main))
        self.awp = {p.name: AWP(model, p.objective, args.awp_gamma, args.awp_warmup, args.lr, args.precision == "bf16",
                                dist) for p in (self.warm_up_phase, self.main_phase)} if args.awp_gamma else {}
        self.pairing = OfficialPairing(model, self.settings, self.mask_pass, args.warm_up + 1, args.save_weights,
                                       progress) if (args.cam_refresh == "official" and not args.no_reweight
                                                    and RULES[args.mask_rule].reads_map) else None
        self.side = SideOutputs(args, test_split, model, self.train_model, self.streams, dist)

    def state_dict(self) -> dict:
        """What a checkpoint holds of the trainer (besides the epoch, position and RNG states, which
        utils.training.resume adds): weights, optimizer, the run's settings, its history and resumptions."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "method": self.method.key,
                "args": vars(self.args), "history": self.history, "resumes": self.resumes}

    def mask_grid(self, epoch: int, path: Path) -> None:
        """The --save-masks picture: PART's budget and the main phase's attack on fixed test images."""
        self.side.mask_grid(epoch, path, self.settings, self.main_phase.attack,
                            self.method.label(self.args.no_reweight, self.args.mask_rule))

    def budget_state(self) -> dict | None:
        """This process's share of the checkpoint: the PART budget policy's state (the official pairing's
        masks; None for every other policy)."""
        return self.pairing.state() if self.pairing is not None else None

    def load_state_dict(self, state: dict, path: str, budget: dict | None) -> None:
        """The inverse of state_dict (+ budget_state); `path` names the file in a mismatch's message."""
        load_model_state(self.model, state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state.get("history", []))
        self.resumes = list(state.get("resumes", []))
        if self.pairing is not None:
            self.pairing.load_state(budget)

    def phase(self, epoch: int) -> Phase:
        return self.warm_up_phase if epoch <= self.args.warm_up else self.main_phase

    def loader(self, shuffle_seed: int):
        if self.loader_kind == "resident":
            self.resident.shuffle_seed = shuffle_seed
            return self.resident
        return train_loader(self.train_set, self.args.batch_size, shuffle_seed, self.args.workers,
                            self.dist.rank, self.dist.world)

    def mask_pass(self, epoch: int):
        """Upstream's save_cam pass: its own shuffle and augmentation, on a forked RNG."""
        with self.streams.fork("masks", epoch):
            for x, y in self.loader(self.streams.seed("masks", epoch)):
                yield x.to(self.device), y.to(self.device)

    # --- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, position: Position | None = None, stop: StopRequest | None = None) -> dict:
        """One epoch of the phase's training step (part.step.train_batch); from `position` on if a
        signal stopped it before. With `stop`, a signal ends it after the current batch (EpochStopped,
        with the position to continue from)."""
        phase, lr, t0 = self.phase(epoch), self.begin_epoch(epoch, position), time.perf_counter()
        t0 -= position.seconds if position else 0.0          # the seconds before a stop count
        tally = Tally(self.device, self.args.epsilon if phase.tracks_budget else None, position)
        batches, n_batches = self.batches(epoch, position)
        for batch_idx, (x, y) in batches:
            x, y = x.to(self.device), y.to(self.device)
            paired = self.pairing.epsilon(batch_idx) if self.pairing is not None and phase is self.main_phase else None
            loss, eps = train_batch(phase, self.model, x, y, self.optimizer, eps=paired, attack_model=self.train_model,
                                    update_model=self.step_model, awp=self.awp.get(phase.name))
            tally.add(batch_idx, loss, eps, len(y))
            self.log_batch(epoch, batch_idx, n_batches, loss)
            signum = stop.after_batch(self.dist, self.device, epoch, batch_idx) if stop is not None else None
            if signum and batch_idx + 1 < n_batches:
                tally.check_finite(self.dist, epoch)
                raise EpochStopped(signum, tally.position(epoch, batch_idx + 1, time.perf_counter() - t0), n_batches)
        loss, full_share = tally.totals(self.dist, epoch)
        row = {"epoch": epoch, "phase": phase.name, "loss": loss, "lr": lr, "seconds": time.perf_counter() - t0}
        if self.dist.parallel:
            self.dist.sync_buffers(self.model)
            row["weights_sha256"] = same_weights_everywhere(self.dist, self.model, epoch)
        if full_share is not None:
            row["full_budget_fraction"] = full_share
        return row

    def begin_epoch(self, epoch: int, position: Position | None) -> float:
        """The epoch's learning rate set, its budget and step told; returns the learning rate."""
        phase, lr = self.phase(epoch), lr_at(self.settings, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if not position and self.pairing is not None and phase is self.main_phase:
            self.pairing.begin_epoch(epoch)   # when continuing, the checkpoint brought the masks
        if phase.name in self.awp:
            self.awp[phase.name].begin_epoch(epoch)
        return lr

    def batches(self, epoch: int, position: Position | None):
        """(index, (x, y)) of this epoch's batches from `position` on (in train mode, with a progress
        bar), and the number of batches."""
        loader = self.loader(self.streams.seed("shuffle", epoch))
        done = position.batches if position else 0
        self.model.train()
        batches = iter(loader)
        if position:
            # The same order from the same seed; the augmentation draws of the skipped batches are
            # then replaced by the RNG states of the moment the run stopped.
            for _ in range(done):
                next(batches)
            set_rng_state(position.rng)
        self.n_images = len(loader.dataset)
        bar = tqdm(batches, total=len(loader), initial=done, desc=f"epoch {epoch}/{self.args.epochs}",
                   disable=not self.progress, leave=False)
        return enumerate(bar, start=done), len(loader)

    def log_batch(self, epoch: int, batch_idx: int, n_batches: int, loss: torch.Tensor) -> None:
        if batch_idx % self.args.log_interval == 0 and self.dist.main:
            done_images = min((batch_idx + 1) * self.args.batch_size, self.n_images)   # over all ranks
            tqdm.write(f"Train Epoch: {epoch} [{done_images}/{self.n_images} "
                       f"({100.0 * (batch_idx + 1) / n_batches:.2f}%)]\tLoss: {loss.item():.6f}")


def log_row(row: dict, epochs: int, base: str) -> str:
    label = {"warm-up": f"{base} warm-up", "baseline": f"{base}", "part": "reweighted"}[row["phase"]]
    text = (f"epoch {row['epoch']}/{epochs} | {label} | loss {row['loss']:.4f} | lr {row['lr']:.5f} | "
            f"{row['seconds']:.1f} s")
    if "full_budget_fraction" in row:
        text += f" | full budget on {100 * row['full_budget_fraction']:.1f}% of elements"
    if "natural" in row:
        text += f" | natural {row['natural']:.2f}% | PGD-20 {row['pgd20']:.2f}%"
    return text


def prepare(args: argparse.Namespace, dist: Dist = Dist(),
            splits: tuple[Split, Split] | None = None) -> tuple[Trainer, DataLoader, Split, Split]:
    """Seed, data, model and trainer for `args` (shared by run() and bench/). `splits`: the (train,
    test) splits already loaded for these args (the bench loads them once for all its cases)."""
    device = pick_device(args.device, dist)
    if args.threads:            # else torch's own: the cores (torchrun: OMP_NUM_THREADS, 1 per process)
        torch.set_num_threads(args.threads)
    set_seed(args.seed + dist.rank * RANK_SEED_STRIDE)
    # --eval-only's test subset, unless given, is a cap (the checkpoint's, or the CPU default).
    test_subset = AtMost(args.test_subset) if (args.eval_only and args.test_subset and
                                               "test_subset" not in getattr(args, "given", ())) else args.test_subset
    train_split, test_split = splits or load_splits(args.data, args.data_dir, not args.no_download, args.train_subset,
                                                    test_subset, need_train=not args.eval_only)
    num_classes = len(test_split.classes)      # NUM_CLASSES[args.data]: load_splits checks it
    model = build_model(args.model, num_classes, image_size=test_split.image_size)
    if args.sync_bn:
        model = global_batch_norm(model)
    model = model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True     # fixed shapes: let cudnn pick the fastest kernels
    progress = not args.no_progress and sys.stderr.isatty() and dist.main
    trainer = Trainer(args, model, train_split, device, progress, test_split, dist)
    test_loader = make_loader(ArraySplit(test_split), args.batch_size, None, args.workers)
    return trainer, test_loader, train_split, test_split


def data_record(train_split: Split, test_split: Split, args: argparse.Namespace) -> dict:
    """What the results were computed on: the source (layout, path, file count, sha256), the image
    counts, and the indices of any fixed subset."""
    record = {**(test_split.source or {}), "train_images": len(train_split), "test_images": len(test_split)}
    if test_split.indices is not None:
        record["test_indices"] = test_split.indices.tolist()
    if set(AUTOATTACKS) & set(args.eval) and args.aa_subset and args.aa_subset < len(test_split):
        record["aa_indices"] = subset_indices(len(test_split), args.aa_subset).tolist()
    return record


def eval_key(model: nn.Module, test_split: Split, args: argparse.Namespace, num_classes: int) -> dict:
    """What an evaluation's numbers depend on: the weights, the test images and the settings."""
    return {"weights": weights_fingerprint(model), "data": (test_split.source or {}).get("sha256"),
            "test_indices": None if test_split.indices is None else len(test_split.indices),
            "test_images": len(test_split), "eval_epsilon": args.eval_epsilon, "step_size": args.step_size,
            "aa_subset": args.aa_subset, "batch_size": args.batch_size, "num_classes": num_classes,
            **({"cam_info": [args.cam, args.low_epsilon, args.cam_info_share]} if "cam-info" in args.eval else {}),
            **({"eval_seeding": args.eval_seeding} if args.eval_seeding != "batch" else {})}


def _checkpoint_to_start_from(args: argparse.Namespace, model_dir: Path, results_path: Path,
                              device: torch.device, loaded: dict | None = None) -> tuple[str | None, dict | None]:
    """The checkpoint --eval-only / --resume / --resume auto names, loaded (--eval-only's: `loaded`, if
    eval_only_settings loaded it already); (None, None) for a fresh run, after making sure it would not
    write over another run's files."""
    if args.eval_only:
        ckpt = loaded if loaded is not None else load_checkpoint(args.eval_only, device)
        refuse_unless_overwrite(earlier_outputs(model_dir, results_path, True), args.overwrite, "this evaluation")
        return args.eval_only, ckpt
    if args.resume == "auto":
        found = newest_loadable(model_dir, device)
        if found is not None:
            return str(found[0]), found[1]
        unusable = checkpoints_in(model_dir)
        if unusable and not args.overwrite:
            raise UserError(f"--resume auto: no checkpoint in {model_dir} can be continued (every one was skipped "
                            "above); to start this run afresh there, add --overwrite (it removes them), or move them "
                            "away, or choose another --model-dir")
        print(f"--resume auto: no checkpoint to continue in {model_dir}; starting a fresh run", flush=True)
    elif args.resume:
        return args.resume, load_checkpoint(args.resume, device)
    refuse_unless_overwrite(earlier_outputs(model_dir, results_path, False), args.overwrite, "this run")
    return None, None


def train_epochs(trainer: Trainer, start: int, position: Position | None, stop: StopRequest, model_dir: Path) -> int:
    """Epochs `start` ... --epochs (the first from `position` if given): one log row each, mask grids,
    checkpoints every --save-freq epochs. A signal ends it after the current batch with a checkpoint
    (Interrupted naming it). Returns the epochs done."""
    args, dist, method = trainer.args, trainer.dist, trainer.method
    epochs_done = start - 1
    for epoch in range(start, args.epochs + 1):
        try:
            row = trainer.train_epoch(epoch, position if epoch == start else None, stop)
        except EpochStopped as stopped:
            path = model_dir / f"epoch{epoch}_batch{stopped.position.batches}.pt"
            save_checkpoint(trainer, trainer.dist, path, epoch - 1, stopped.position)
            raise Interrupted(stopped.signum, f"in epoch {epoch} after batch {stopped.position.batches} of "
                                              f"{stopped.batches}: checkpoint {path} written",
                              ["--resume", str(path)]) from None
        trainer.side.periodic_eval(epoch, row)
        trainer.history.append(row)
        epochs_done = epoch
        print(log_row(row, args.epochs, method.base), flush=True)
        if args.save_masks and epoch in (args.warm_up, args.epochs) and dist.main:
            grid = model_dir / f"masks_epoch{epoch}.png"
            trainer.mask_grid(epoch, grid)
            print(f"mask grid written to {grid}", flush=True)
        path = model_dir / f"epoch{epoch}.pt"
        signum = stop.agreed(dist, trainer.device) if epoch < args.epochs else None
        if epoch % args.save_freq == 0 or epoch == args.epochs or signum:
            save_checkpoint(trainer, trainer.dist, path, epoch)
            if dist.main:
                remove_partials_before(model_dir, (epoch, 0))
        if signum:
            raise Interrupted(signum, f"after epoch {epoch}: checkpoint {path} written",
                              ["--resume", str(path)])
    return epochs_done


def run(args: argparse.Namespace) -> dict:
    """Train (or continue, or only evaluate), evaluate and write the results. SIGTERM / SIGINT stop it
    after the current batch with a checkpoint (Interrupted); the evaluation keeps its progress."""
    with StopRequest() as stop, process_group(args.device) as dist, contextlib.ExitStack() as quiet:
        if not dist.main:
            # Under torchrun rank 0 speaks for all: log rows, accuracies and messages once.
            quiet.enter_context(contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w"))))
        return _run(args, stop, dist)


# What --eval-only takes from the checkpoint it evaluates, unless given: the network and how it ran,
# the data it was trained and tested on, the attack step, and what cam-info reads.
FROM_CHECKPOINT = ("model", "channels_last", "precision", "data", "test_subset", "aa_subset", "step_size", "cam",
                   "epsilon", "low_epsilon", "mask_rule", "top_share")
# --eval-only on a CPU without --eval / --test-subset: what finishes in minutes there.
CPU_EVAL, CPU_EVAL_IMAGES = ["natural", "pgd20"], 1000


def eval_only_settings(args: argparse.Namespace, dist: Dist) -> dict:
    """--eval-only CKPT with nothing else: the settings FROM_CHECKPOINT (and its --data-dir, where that
    still exists) from the checkpoint's own record; on a CPU natural and PGD-20 on a fixed 1,000 test
    images unless --eval / --test-subset say otherwise. Every flag given wins. Returns the checkpoint,
    loaded to this process's device (it is not loaded again)."""
    given = set(getattr(args, "given", ()))
    device = pick_device(args.device, dist)
    ckpt = load_checkpoint(args.eval_only, device)
    saved = ckpt.get("args") or {}
    taken = [k for k in FROM_CHECKPOINT if k not in given and k in saved and saved[k] != getattr(args, k, None)]
    for k in taken:
        setattr(args, k, saved[k])
    if "data_dir" not in given and saved.get("data_dir") and Path(saved["data_dir"]).exists():
        args.data_dir = saved["data_dir"]
        taken.append("data_dir")
    if taken:
        print("--eval-only: from the checkpoint " + ", ".join(f"{flag(k)} {getattr(args, k)}" for k in taken),
              flush=True)
    if device.type == "cpu" and "eval" not in given:
        args.eval = list(CPU_EVAL)
        if "test_subset" not in given and args.test_subset is None:
            args.test_subset = CPU_EVAL_IMAGES
        print(f"--eval-only on the CPU: {', '.join(args.eval)} on {args.test_subset} fixed test images by default "
              "(MMA and AutoAttack of all 10,000 take hours on a CPU); --eval and --test-subset choose more", flush=True)
    return ckpt


def _run(args: argparse.Namespace, stop: StopRequest, dist: Dist) -> dict:
    """Check everything that needs no data, load, train (or continue, or only load the weights to
    evaluate), evaluate, and write the results."""
    loaded = eval_only_settings(args, dist) if args.eval_only else None
    model_dir = Path(args.model_dir or default_model_dir(args))
    results_path = Path(args.results) if args.results else model_dir / "results.json"
    if args.eval_only and not args.results and not args.model_dir:
        results_path = Path(args.eval_only).with_suffix(".eval.json")    # never a training run's results
    outputs = ([] if args.eval_only else [model_dir]) + [results_path.parent]
    ckpt_path, ckpt, differences = _start_from(args, model_dir, results_path, outputs, dist, loaded)
    if ckpt is _FINISHED:
        return json.loads(results_path.read_text())
    trainer, test_loader, train_split, test_split = prepare(args, dist)
    _claim(outputs, ckpt is None, args, model_dir, results_path, dist)
    _announce(args, trainer, train_split, test_split, ckpt_path)
    if args.eval_only:
        load_model_state(trainer.model, ckpt, ckpt_path)
        epochs_done = int(ckpt.get("epoch", 0))
    else:
        start, position = (1, None) if ckpt is None else _continue(trainer, ckpt, ckpt_path, differences)
        if stop.signum is not None:
            raise Interrupted(stop.signum, "before training started (nothing to save)", [])
        epochs_done = train_epochs(trainer, start, position, stop, model_dir)
    record = EvalProgress(progress_file(results_path), eval_key(trainer.model, test_split, args, trainer.num_classes))
    try:
        ev = evaluate(trainer.model, test_loader, args.eval, EvalSettings.from_args(args), trainer.num_classes,
                      trainer.progress, record=record, stop=stop, dist=dist)
    except Interrupted as exc:
        exc.where += f": progress kept in {record.path}"
        if not args.eval_only:
            exc.resume_args = ["--resume", str(model_dir / f"epoch{args.epochs}.pt")]
        raise
    results = results_record(args, trainer, ev, epochs_done, model_dir, results_path, train_split, test_split)
    if dist.main:
        write_json(results, results_path)
        record.remove()
        print(f"results written to {results_path}", flush=True)
    dist.barrier()
    return results


_FINISHED = object()      # _start_from's answer for a finished run under --resume auto


def _start_from(args: argparse.Namespace, model_dir: Path, results_path: Path, outputs: list[Path],
                dist: Dist, loaded: dict | None = None) -> tuple[str | None, dict | None, dict]:
    """The checkpoint to start from (None for a fresh run), checked against this command line, the
    model it must fit and the folders it will write, before any data are loaded (tens of seconds
    for CIFAR-10); (path, _FINISHED, {}) when --resume auto finds the run finished."""
    ckpt_path, ckpt = _checkpoint_to_start_from(args, model_dir, results_path, pick_device(args.device, dist),
                                                loaded)
    chosen = dist.gather(ckpt_path)
    if len(set(chosen)) > 1:
        raise UserError(f"the processes would start from different checkpoints ({', '.join(map(str, chosen))}); "
                        "--model-dir must be one shared folder for all of them")
    differences = check_resume(ckpt, ckpt_path, args) if ckpt is not None and not args.eval_only else {}
    if (args.resume == "auto" and ckpt is not None and "position" not in ckpt and ckpt["epoch"] == args.epochs
            and results_path.exists() and not progress_file(results_path).exists()):
        print(f"--resume auto: this run is finished ({ckpt_path}); its results are in {results_path}", flush=True)
        return ckpt_path, _FINISHED, {}
    if ckpt is not None:
        check_fits(ckpt, ckpt_path, args.model, NUM_CLASSES[args.data], IMAGE_SIZE[args.data])
    check_writable(*outputs, create=False)
    return ckpt_path, ckpt, differences


def _claim(outputs: list[Path], fresh: bool, args: argparse.Namespace, model_dir: Path, results_path: Path,
           dist: Dist) -> None:
    """Make the output folders; once every rank has read what it needs, rank 0 removes what a fresh
    run replaces (only there with --overwrite) and dead writers' temporaries."""
    check_writable(*outputs)
    dist.barrier()
    if dist.main:
        if fresh:
            remove(earlier_outputs(model_dir, results_path, False))
        remove_stale_temporaries(None if args.eval_only else model_dir, results_path)


def _announce(args: argparse.Namespace, trainer: Trainer, train_split: Split, test_split: Split,
              ckpt_path: str | None) -> None:
    method, dist = trainer.method, trainer.dist
    ranks = f" | {dist.world} processes, {args.batch_size // dist.world} images each per batch" if dist.parallel else ""
    label = f"{method.name}{' (baseline: ' + method.base + ')' if args.no_reweight else ''}"
    if args.eval_only:
        print(f"evaluating {ckpt_path} | {label} | {args.data} ({len(test_split)} test) | {args.model} | "
              f"{trainer.device}", flush=True)
    else:
        print(f"{label} | {args.data} ({len(train_split)} train / {len(test_split)} test) | {args.model} | "
              f"{trainer.device} | augmentation {args.augmentation}{ranks}", flush=True)
    if args.dataset_overrides:
        applied = ", ".join(f"{k} {v:.6g}" for k, v in args.dataset_overrides.items())
        print(f"{args.data} settings of the official scripts applied: {applied} "
              "(give a flag to override it)", flush=True)


def _continue(trainer: Trainer, ckpt: dict, ckpt_path: str, differences: dict) -> tuple[int, Position | None]:
    """Restore a checkpoint of ours; (the epoch to start, the position inside it or None)."""
    epochs_done, position = restore_checkpoint(trainer, trainer.dist, ckpt, ckpt_path, differences)
    where = f" and {position.batches} batches of epoch {epochs_done + 1}" if position else ""
    allowed = "; allowed differences (--resume-anyway): " + ", ".join(
        f"{flag(k)} {old} -> {new}" for k, (old, new) in differences.items()) if differences else ""
    print(f"resumed from {ckpt_path} after epoch {epochs_done}{where}{allowed}", flush=True)
    return epochs_done + 1, position


def results_record(args: argparse.Namespace, trainer: Trainer, ev: dict, epochs_done: int, model_dir: Path,
                   results_path: Path, train_split: Split, test_split: Split) -> dict:
    """The results JSON: the method, the arguments, the accuracies, seconds, history, data, versions."""
    method, device = trainer.method, trainer.device
    seconds = {}
    for phase in ("warm-up", "part", "baseline"):
        rows = [r["seconds"] for r in trainer.history if r["phase"] == phase]
        if rows:
            seconds[f"train_{phase}"] = sum(rows)
    seconds.update({f"eval_{k}": v for k, v in ev["seconds"].items()})
    return {
        "method": method.label(args.no_reweight, args.mask_rule),
        "script": method.script,
        # The folders and the loader used, also where the flags left them to their defaults.
        "args": {**vars(args), "model_dir": str(model_dir), "results": str(results_path),
                 "loader": trainer.loader_kind},
        "epochs_done": epochs_done,
        **{k: ev.get(k) for k in EVALS},
        "test_images": ev["total"],
        "images": ev["images"],            # per evaluation: all test images, or --aa-subset for AutoAttack
        "counts": ev["counts"],
        "seconds": seconds,
        "history": trainer.history,
        "resumes": trainer.resumes,
        "data": data_record(train_split, test_split, args),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        # CPU numbers differ slightly between CPU models and thread counts (other kernels, other sums).
        "machine": {"cpu": cpu_model(), "cores": cores_available(), "threads": torch.get_num_threads()},
        "torch": torch.__version__,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "source_changes": source_changes(),     # tracked source files not committed: [] for a clean tree
    }
