"""Checkpoints: written atomically, loaded with torch.load(weights_only=True) only, so that loading a
file never runs code from it; found again by `--resume auto`.

Names in a model folder: `epoch<N>.pt` after epoch N; `epoch<E>_batch<B>.pt` when a signal stopped
epoch E after B of its batches.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from utils.errors import UserError
from utils.files import atomic_write

_NAME = re.compile(r"epoch(?P<epoch>\d+)(?:_batch(?P<batch>\d+))?\.pt")


def rng_state() -> dict:
    """Every RNG the training pass draws from, in types torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    # The states are CPU ByteTensors whatever map_location moved them to (a CUDA run's checkpoint
    # is loaded onto the GPU); torch and torch.cuda accept only CPU ones.
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    if isinstance(p, dict):
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    else:                            # checkpoints written before the state became a dict
        random.setstate(p)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """torch.save, written atomically (utils.files.atomic_write)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict:
    """Our checkpoint dict, or a bare state dict (official checkpoints, DataParallel prefix allowed).
    Only tensors and plain Python values are unpickled (weights_only=True); a file that would need
    anything else is refused, never loaded."""
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise UserError(f"refused to load checkpoint {path}: it needs {found[1]} to unpickle, which could run "
                            "code; only files of tensors and plain values are loaded (weights_only)") from None
        raise UserError(f"cannot read checkpoint {path}: not a torch checkpoint") from None
    except Exception as exc:  # missing, truncated, not a torch file
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
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


def progress_of(path: Path) -> tuple[int, int] | None:
    """(epochs complete, batches of the next epoch done) from a checkpoint's name; None if not ours."""
    m = _NAME.fullmatch(path.name)
    if m is None:
        return None
    if m["batch"] is None:
        return int(m["epoch"]), 0
    return int(m["epoch"]) - 1, int(m["batch"])


def checkpoints_in(folder: Path) -> list[Path]:
    """Our checkpoints in `folder`, newest first."""
    if not folder.is_dir():
        return []
    found = [(progress_of(p), p) for p in folder.iterdir() if p.is_file() and progress_of(p) is not None]
    return [p for _, p in sorted(found, reverse=True)]


def remove_partials_before(folder: Path, progress: tuple[int, int]) -> None:
    """Delete the mid-epoch checkpoints that a newer complete one has made redundant."""
    for path in checkpoints_in(folder):
        p = progress_of(path)
        if p[1] and p < progress:
            path.unlink(missing_ok=True)


def newest_loadable(folder: Path, device: torch.device) -> tuple[Path, dict] | None:
    """The newest checkpoint in `folder` that loads and can be resumed; damaged ones are named and
    passed over (what `--resume auto` needs after a kill mid-write on a file system without atomic
    rename, or a copy cut short)."""
    for path in checkpoints_in(folder):
        try:
            ckpt = load_checkpoint(path, device)
        except UserError as exc:
            print(f"skipped {path}: {exc}", flush=True)
            continue
        if "optimizer" in ckpt and "epoch" in ckpt and "rng" in ckpt:
            return path, ckpt
        print(f"skipped {path}: weights only, cannot be resumed", flush=True)
    return None


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the names and bytes of the state dict: which weights an evaluation belongs to."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pack_masks(masks: list[torch.Tensor]) -> dict:
    """Boolean masks (one per batch) as bits: a CIFAR-10 epoch's masks take 19 MB instead of 154 MB."""
    flat = torch.cat([m.reshape(len(m), -1) for m in masks]).cpu().numpy()
    return {"bits": torch.from_numpy(np.packbits(flat, axis=1)), "sizes": [len(m) for m in masks],
            "shape": list(masks[0].shape[1:])}


def unpack_masks(packed: dict, device: torch.device) -> list[torch.Tensor]:
    shape = packed["shape"]
    n = int(np.prod(shape))
    flat = np.unpackbits(packed["bits"].cpu().numpy(), axis=1, count=n).astype(bool)
    out, start = [], 0
    for size in packed["sizes"]:
        out.append(torch.from_numpy(flat[start:start + size]).reshape(size, *shape).to(device))
        start += size
    return out
