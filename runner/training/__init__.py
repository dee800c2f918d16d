"""The trainer: epochs of `part.step.train_batch`, checkpoints and their resumption, the side
outputs (learning curves, mask grids), the results record. `TrainingSettings`: how the epochs run."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingSettings:
    """How a run's epochs go, from the command line once (the method's own settings: part.PartSettings)."""
    seed: int
    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    bf16: bool                   # --precision bf16: the training forward passes under autocast
    cuda_graphs: bool            # the training attack captured as a CUDA graph on CUDA
    awp_gamma: float             # AWP's size (0: off) and its first epoch
    awp_warmup: int
    official_pairing: bool       # --cam-refresh official: masks paired by batch index, as upstream
    save_weights: int            # with it: recompute the masks every N PART epochs
    log_interval: int            # batches between progress lines
    save_freq: int               # a checkpoint every N epochs
    save_masks: int              # mask grids of N test images after the warm-up and at the end
    eval_every: int              # learning curves every K epochs on eval_subset test images
    eval_subset: int

    @classmethod
    def from_args(cls, args) -> "TrainingSettings":
        return cls(args.seed, args.epochs, args.lr, args.momentum, args.weight_decay, args.precision == "bf16",
                   not args.no_cuda_graphs, args.awp_gamma, args.awp_warmup, args.cam_refresh == "official",
                   args.save_weights, args.log_interval, args.save_freq, args.save_masks, args.eval_every,
                   args.eval_subset)
