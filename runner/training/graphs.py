"""The training attack of a full batch as one CUDA graph (airbench style: the 10-step attack is
launch-bound in eager mode; replaying a captured graph removes the per-kernel launch cost).

`GraphedAttack` is given the attack call itself by part.step.train_batch (`graph(attack, model, x, y,
eps, **settings)`: the phase's attack, named there); `graphed` makes one per phase on CUDA. The attack
runs through static buffers: the batch, labels and budget map are copied into tensors of fixed address,
the attack reads them, and its result is copied out. On the CPU (and with --no-cuda-graphs) that same
path runs eagerly, which tests check equals the plain attack bit for bit. On CUDA the path is captured
once per batch shape and budget kind after a few eager warm-up runs on a side stream, and replayed
afterwards; a batch of another shape (the odd last batch of an epoch, a mask grid) runs eagerly.

The first replay is checked against an eager run from the same RNG state (`agreement`). Both draw
the same start noise; they may still differ where a gradient's sign is decided by the order of
floating-point additions, so the check allows up to GRAPH_TOLERANCE of the elements to differ by more
than 1e-5 and stops the run with a clear message otherwise.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from attacks.common import Budget
from common.errors import UserError

GRAPH_TOLERANCE = 0.01        # share of elements allowed to differ between graph and eager
WARMUP_RUNS = 3


class _Captured:
    """Static inputs, the captured graph and its static output, for one (shape, budget kind)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, eps: Budget) -> None:
        self.x, self.y = x.clone(), y.clone()
        self.eps = eps.clone() if torch.is_tensor(eps) else eps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: torch.Tensor | None = None
        self.checked = False

    def load(self, x: torch.Tensor, y: torch.Tensor, eps: Budget) -> None:
        self.x.copy_(x)
        self.y.copy_(y)
        if torch.is_tensor(eps):
            self.eps.copy_(eps)


class GraphedAttack:
    """An attack whose calls on full batches replay a captured CUDA graph (see the module doc)."""

    def __init__(self, batch_size: int, capture: bool) -> None:
        self.batch_size, self.capture = batch_size, capture
        self.slots: dict[tuple, _Captured] = {}
        self.agreement: float | None = None       # share of elements equal to eager at the check

    @staticmethod
    def _key(x: torch.Tensor, eps: Budget) -> tuple:
        # A float budget is baked into the graph; a map's values are copied in at every replay.
        return tuple(x.shape), (tuple(eps.shape) if torch.is_tensor(eps) else float(eps))

    def __call__(self, attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: Budget,
                 **settings) -> torch.Tensor:
        attack = functools.partial(attack, **settings)      # one phase's: one GraphedAttack per phase
        if len(x) != self.batch_size:
            return attack(model, x, y, eps)
        key = self._key(x, eps)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = _Captured(x, y, eps)
        slot.load(x, y, eps)
        if not self.capture:
            return attack(model, slot.x, slot.y, slot.eps).clone()
        if slot.graph is None:
            self._record(attack, model, slot)
        state = torch.cuda.get_rng_state(x.device)
        slot.graph.replay()
        out = slot.out.clone()
        if not slot.checked:
            self._check(attack, model, slot, out, state)
        return out

    def _record(self, attack, model: nn.Module, slot: _Captured) -> None:
        dev = slot.x.device
        with torch.random.fork_rng(devices=[dev]):       # the warm-up runs draw no training noise
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):               # cudnn autotuning, allocator warm-up
                    attack(model, slot.x, slot.y, slot.eps)
            torch.cuda.current_stream(dev).wait_stream(side)
        slot.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(slot.graph):
            slot.out = attack(model, slot.x, slot.y, slot.eps)

    def _check(self, attack, model: nn.Module, slot: _Captured, out: torch.Tensor, state: torch.Tensor) -> None:
        after = torch.cuda.get_rng_state(out.device)
        torch.cuda.set_rng_state(state, out.device)
        eager = attack(model, slot.x, slot.y, slot.eps)
        torch.cuda.set_rng_state(after, out.device)
        self.agreement = agreement(out, eager)
        slot.checked = True


def agreement(graph_out: torch.Tensor, eager_out: torch.Tensor) -> float:
    """The share of elements on which the graph's result equals the eager one (within 1e-5); the run
    stops when more than GRAPH_TOLERANCE of them differ."""
    differ = float(((graph_out - eager_out).abs() > 1e-5).float().mean())
    if differ > GRAPH_TOLERANCE:
        raise UserError(f"the CUDA graph of the training attack disagrees with the eager attack on "
                        f"{100 * differ:.2f}% of the elements (more than {100 * GRAPH_TOLERANCE:g}%); "
                        "rerun with --no-cuda-graphs and report this")
    return 1.0 - differ


def graphed(batch_size: int, device: torch.device, enabled: bool) -> GraphedAttack | None:
    """A phase's CUDA graph of its attack on CUDA (train_batch's `graph`); None on the CPU or when disabled."""
    if device.type != "cuda" or not enabled:
        return None
    return GraphedAttack(batch_size, capture=True)

