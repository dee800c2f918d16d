"""The epoch loop behind train_eval_part*.py: the Trainer (the method's phases and what wraps its step from
outside: bf16, DistributedDataParallel, the attack as a CUDA graph, AWP, the official pairing), one epoch of
part.step.train_batch, one log row per epoch, checkpoints every --save-freq epochs. The run around it (a
fresh start, --resume, --eval-only) is runner/training/training.py, the results record runner/training/record.py."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from cam.rules import RULES
from models.zoo import Autocast
from part import VARIANTS, PartSettings
from part.step import BASE_METHODS, Phase, attack_of, lr_at, objective_of, phases, train_batch
from runner.data.loaders import ArraySplit, ResidentLoader, on_device, train_augmentation, train_loader
from runner.data.split import Split
from runner.evaluation import EvalSettings
from runner.infra.checkpoint import load_model_state, remove_partials_before, set_rng_state, weights_fingerprint
from runner.infra.distributed import Dist
from runner.infra.interrupt import Interrupted, StopRequest
from runner.infra.provenance import git_commit, source_changes
from common.rng import Streams
from runner.data import DataSettings
from runner.training import TrainingSettings
from runner.training.awp import AWP
from runner.training.graphs import graphed
from runner.training.pairing import OfficialPairing
from runner.training.resume import EpochStopped, Position, Tally, data_identity, save_checkpoint
from runner.training.curves_and_grids import CurvesAndGrids


def same_weights_everywhere(dist: Dist, model: nn.Module, epoch: int) -> str:
    """The sha256 of the weights, the same on every rank. DDP keeps the replicas equal by construction;
    a diverged rank would make every later number meaningless, so they are compared once per epoch."""
    prints = dist.gather(weights_fingerprint(model))
    if len(set(prints)) > 1:
        raise RuntimeError(f"the ranks' weights differ after epoch {epoch}: {prints}")
    return prints[0]


class Trainer:
    """The run's model, optimizer and data, the method's two phases (part.step) and what wraps its step
    from outside. Its settings come from the command line once: the method's (`settings`), the training
    loop's (`training`), the data's (`data`); `command_line` is what the checkpoints record."""

    def __init__(self, args: argparse.Namespace, model: nn.Module, train_split: Split,
                 device: torch.device, progress: bool, test_split: Split, dist: Dist = Dist()) -> None:
        self.command_line = args
        self.settings = PartSettings.from_args(args)
        self.training = training = TrainingSettings.from_args(args)
        self.data = data = DataSettings.from_args(args)
        self.dist = dist
        # --batch-size is the global batch; each rank trains on its slice of it.
        self.rank_batch = data.batch_size // dist.world
        self.num_classes = len(test_split.classes)
        self.method = VARIANTS[args.method]
        self.model = model
        # Attacks and losses run through attack_model (bf16 autocast if asked); the CAM, the
        # evaluation and the optimizer see the fp32 model itself.
        self.attack_model = Autocast(model) if training.bf16 else model
        # The training step's forward passes go through DistributedDataParallel under torchrun (its
        # gradients are averaged over ranks); the attacks, CAM and evaluation use the module itself.
        self.update_model = None
        if dist.parallel:
            ids = [device.index] if device.type == "cuda" else None
            ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
            self.update_model = Autocast(ddp) if training.bf16 else ddp
        self.device = device
        self.progress = progress
        self.streams = Streams(training.seed, device)
        self.image_size = test_split.image_size
        augment = data.augmentation == "crop-flip"
        # --loader auto: resident on CUDA, the torch loader on the CPU (bench/RESULTS.md measures both).
        self.loader_kind = data.loader if data.loader != "auto" else "resident" if device.type == "cuda" else "torch"
        if self.loader_kind == "resident":
            # Moved to the device once; each pass only sets its shuffle seed.
            self.resident = ResidentLoader(train_split, data.batch_size, None, augment, device,
                                           rank=dist.rank, world=dist.world)
        else:
            self.train_set = ArraySplit(train_split, train_augmentation(self.image_size) if augment else None)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum,
                                         weight_decay=training.weight_decay)
        self.history: list[dict] = []
        self.resumes: list[dict] = []    # each --resume of this run: checkpoint, position, differences allowed, code
        # The code the run started at (a resume keeps the checkpoint's; each resume records its own).
        self.started = {"git_commit": git_commit(), "source_changes": source_changes()}
        self.run_id: str | None = None           # the run's identity (runner.training.ownership), set by the run
        self.trained_on = data_identity(train_split)   # its data, wherever they lie (a resume checks it)
        # The method (part.step): its two phases; what wraps its step from outside: the attack as a CUDA
        # graph, AWP around the update, the official pairing's stored ε maps.
        s = self.settings
        self.warm_up_phase, self.main_phase = phases(s, BASE_METHODS[self.method.base_key])
        self.graphs = {p.name: graphed(self.rank_batch, device, training.cuda_graphs)
                       for p in (self.warm_up_phase, self.main_phase)}
        self.awp = {p.name: AWP(model, objective_of(p), training.awp_gamma, training.awp_warmup, training.lr,
                                training.bf16, dist)
                    for p in (self.warm_up_phase, self.main_phase)} if training.awp_gamma else {}
        self.pairing = OfficialPairing(model, s, self.mask_pass, s.warm_up + 1, training.save_weights, progress,
                                       self.streams, (dist.rank, dist.world)) if (
            training.official_pairing and not s.no_reweight and RULES[s.mask_rule].reads_map) else None
        self.outputs = CurvesAndGrids(EvalSettings.from_args(args), test_split, model, self.attack_model, self.streams,
                                      dist, every=training.eval_every, subset=training.eval_subset,
                                      grid=training.save_masks, epochs=training.epochs, batch_size=data.batch_size,
                                      workers=data.workers)

    def state_dict(self) -> dict:
        """What a checkpoint holds of the trainer (besides the epoch, position and RNG states, which
        runner.training.resume adds): weights, optimizer, the run's settings, its history and resumptions."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "method": self.method.key,
                "args": vars(self.command_line), "history": self.history, "resumes": self.resumes,
                "started": self.started, "run_id": self.run_id, "data": self.trained_on}

    def mask_grid(self, epoch: int, path: Path) -> None:
        """The --save-masks picture: PART's budget and the main phase's attack on fixed test images."""
        self.outputs.mask_grid(epoch, path, self.settings, attack_of(self.main_phase),
                            self.method.label(self.settings.no_reweight, self.settings.mask_rule))

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
        self.started = state.get("started", {"git_commit": None, "source_changes": None})  # None: not recorded
        if self.pairing is not None:
            self.pairing.load_state(budget)

    def phase(self, epoch: int) -> Phase:
        return self.warm_up_phase if epoch <= self.settings.warm_up else self.main_phase

    def loader(self, shuffle_seed: int):
        if self.loader_kind == "resident":
            self.resident.shuffle_seed = shuffle_seed
            return self.resident
        return train_loader(self.train_set, self.data.batch_size, shuffle_seed, self.data.workers,
                            self.dist.rank, self.dist.world)

    def mask_pass(self, epoch: int):
        """Upstream's save_cam pass: its own shuffle and augmentation, on a forked RNG."""
        with self.streams.fork("masks", epoch):
            for batch in self.loader(self.streams.seed("masks", epoch)):
                yield on_device(batch, self.device)       # (x, y, extras)

    # --- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, position: Position | None = None, stop: StopRequest | None = None) -> dict:
        """One epoch of the phase's training step (part.step.train_batch); from `position` on if a
        signal stopped it before. With `stop`, a signal ends it after the current batch (EpochStopped,
        with the position to continue from)."""
        phase, lr = self.phase(epoch), self.begin_epoch(epoch, position)
        t0 = time.perf_counter() - (position.seconds if position else 0.0)      # the seconds before a stop count
        tally = Tally(self.device, self.settings.epsilon if phase.tracks_budget else None, position)
        batches, n_batches = epoch_batches(self, epoch, position)
        for batch_idx, batch in batches:
            x, y, extras = on_device(batch, self.device)      # extras: the per-image extras a dataset gives
            paired = self.pairing.epsilon(batch_idx) if self.pairing is not None and phase is self.main_phase else None
            # A map that draws (the random maps) draws from this batch's own stream (each rank its own).
            map_seed = self.streams.batch_seed("maps", epoch, batch_idx * self.dist.world + self.dist.rank)
            loss, eps = train_batch(phase, self.model, x, y, self.optimizer, extras, eps=paired,
                                    attack_model=self.attack_model, update_model=self.update_model,
                                    awp=self.awp.get(phase.name), graph=self.graphs[phase.name], map_seed=map_seed)
            tally.add(batch_idx, loss, eps, len(y))
            log_batch(self, epoch, batch_idx, n_batches, loss)
            signum = stop.after_batch(self.dist, self.device, epoch, batch_idx) if stop is not None else None
            if signum and batch_idx + 1 < n_batches:
                tally.check_finite(self.dist, epoch)
                raise EpochStopped(signum, tally.position(epoch, batch_idx + 1, time.perf_counter() - t0), n_batches)
        loss, full_share = tally.totals(self.dist, epoch)
        row = {"epoch": epoch, "phase": phase.name, "loss": loss, "lr": lr, "seconds": time.perf_counter() - t0,
               **({} if full_share is None else {"full_budget_fraction": full_share})}
        if self.dist.parallel:
            self.dist.sync_buffers(self.model)
            row["weights_sha256"] = same_weights_everywhere(self.dist, self.model, epoch)
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



def epoch_batches(trainer: Trainer, epoch: int, position: Position | None):
    """(index, (x, y)) of the trainer's batches of `epoch` from `position` on (in train mode, with a progress
    bar), and the number of batches."""
    loader = trainer.loader(trainer.streams.seed("shuffle", epoch))
    done = position.batches if position else 0
    trainer.model.train()
    batches = iter(loader)
    if position:
        # The same order from the same seed; the augmentation draws of the skipped batches are
        # then replaced by the RNG states of the moment the run stopped.
        for _ in range(done):
            next(batches)
        set_rng_state(position.rng)
    trainer.n_images = len(loader.dataset)
    bar = tqdm(batches, total=len(loader), initial=done, desc=f"epoch {epoch}/{trainer.training.epochs}",
               disable=not trainer.progress, leave=False)
    return enumerate(bar, start=done), len(loader)


def log_batch(trainer: Trainer, epoch: int, batch_idx: int, n_batches: int, loss: torch.Tensor) -> None:
    """The official progress line every --log-interval batches (rank 0)."""
    if batch_idx % trainer.training.log_interval == 0 and trainer.dist.main:
        done_images = min((batch_idx + 1) * trainer.data.batch_size, trainer.n_images)   # over all ranks
        tqdm.write(f"Train Epoch: {epoch} [{done_images}/{trainer.n_images} "
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


def train_epochs(trainer: Trainer, start: int, position: Position | None, stop: StopRequest, model_dir: Path) -> int:
    """Epochs `start` ... --epochs (the first from `position` if given): one log row each, mask grids,
    checkpoints every --save-freq epochs. A signal ends it after the current batch with a checkpoint
    (Interrupted naming it). Returns the epochs done."""
    training, dist, method, warm_up = trainer.training, trainer.dist, trainer.method, trainer.settings.warm_up
    epochs_done = start - 1
    for epoch in range(start, training.epochs + 1):
        try:
            row = trainer.train_epoch(epoch, position if epoch == start else None, stop)
        except EpochStopped as stopped:
            path = model_dir / f"epoch{epoch}_batch{stopped.position.batches}.pt"
            save_checkpoint(trainer, trainer.dist, path, epoch - 1, stopped.position)
            raise Interrupted(stopped.signum, f"in epoch {epoch} after batch {stopped.position.batches} of "
                                              f"{stopped.batches}: checkpoint {path} written",
                              ["--resume", str(path)]) from None
        trainer.outputs.periodic_eval(epoch, row)
        trainer.history.append(row)
        epochs_done = epoch
        print(log_row(row, training.epochs, method.base), flush=True)
        if training.save_masks and epoch in (warm_up, training.epochs) and dist.main:
            grid = model_dir / f"masks_epoch{epoch}.png"
            trainer.mask_grid(epoch, grid)
            print(f"mask grid written to {grid}", flush=True)
        path = model_dir / f"epoch{epoch}.pt"
        signum = stop.agreed(dist, trainer.device) if epoch < training.epochs else None
        if epoch % training.save_freq == 0 or epoch == training.epochs or signum:
            save_checkpoint(trainer, trainer.dist, path, epoch)
            if dist.main:
                remove_partials_before(model_dir, (epoch, 0))
        if signum:
            raise Interrupted(signum, f"after epoch {epoch}: checkpoint {path} written",
                              ["--resume", str(path)])
    return epochs_done
