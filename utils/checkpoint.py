"""Checkpoints: written atomically, loadable with torch.load(weights_only=True)."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from utils.errors import UserError
from utils.files import atomic_write


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    # The states are CPU ByteTensors whatever map_location moved them to (a CUDA run's checkpoint
    # is loaded onto the GPU); torch and torch.cuda accept only CPU ones.
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """torch.save, written atomically (utils.files.atomic_write)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict:
    """Our checkpoint dict, or a bare state dict (official checkpoints, DataParallel prefix allowed)."""
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # missing, truncated, not a torch file, unsafe pickle
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(obj, dict):
        raise UserError(f"cannot read checkpoint {path}: not a checkpoint or state dict")
    if "model" not in obj:
        if not obj or not all(torch.is_tensor(v) for v in obj.values()):
            raise UserError(f"cannot read checkpoint {path}: not a checkpoint or state dict")
        obj = {"model": obj}
    obj["model"] = {k.removeprefix("module."): v for k, v in obj["model"].items()}
    return obj


def load_model_state(model: torch.nn.Module, ckpt: dict, path: str) -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"checkpoint {path} does not fit this model: {first}") from None
