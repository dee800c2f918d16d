"""Checkpoints: written atomically, loaded with torch.load(weights_only=True) only, so that loading a
file never runs code from it; found again by `--resume auto`.

Names in a model folder: `epoch<N>.pt` after epoch N; `epoch<E>_batch<B>.pt` when a signal stopped
epoch E after B of its batches.
"""
from __future__ import annotations

import _compat_pickle
import hashlib
import io
import os
import pickletools
import random
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from runner.infra.files import PROGRESS_SUFFIX, atomic_write, stale_temporaries

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
    """torch.save, written atomically (runner.infra.files.atomic_write)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def _pickle_globals(data: bytes) -> list[str]:
    """module.name of every GLOBAL / INST / STACK_GLOBAL in the pickles of `data`, in Python 3 spelling.
    STACK_GLOBAL takes its two names from the stack: string pushes and memo gets are followed (what
    pickle writes before it); any other push stands as an unknown value."""
    names: list[str] = []
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):     # torch's legacy format is several pickles in a row
            memo: dict = {}
            recent: list = []
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    names.append(_py3_name(*str(arg).split(" ", 1)))
                    recent.append(None)
                elif op.name == "STACK_GLOBAL":
                    names.append(_py3_name(str(recent[-2]), str(recent[-1])) if len(recent) > 1 else "?")
                    recent.append(None)
                elif op.name in _STRINGS:
                    recent.append(arg)
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = recent[-1] if recent else None
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    recent.append(memo.get(arg))
                elif op.stack_after:
                    recent.append(None)
    except Exception:    # raw tensor bytes after the pickles, or a damaged file: the names found so far
        pass
    return names


def _py3_name(module: str, name: str) -> str:
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def unsafe_globals(path: Path) -> list[str]:
    """The globals (module.name) a torch file would need to unpickle beyond what weights_only loading
    allows: read from the file without running it. torch's own reader for its zip format; for the
    legacy format (pickles in a row) the GLOBAL opcodes, listed with pickletools."""
    try:
        if zipfile.is_zipfile(path):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        data = Path(path).read_bytes()
    except Exception:
        return []
    names = _pickle_globals(data)
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed = set(_get_allowed_globals())
    except Exception:     # a torch without that list
        allowed = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2"}
    storage = re.compile(r"torch\.(cuda\.)?\w*Storage")
    return [n for n in dict.fromkeys(names) if n not in allowed and not storage.fullmatch(n)]


def load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict:
    """Our checkpoint dict, or a bare state dict (official checkpoints, DataParallel prefix allowed).
    Only tensors and plain Python values are unpickled (weights_only=True); a file that would need
    anything else is refused, never loaded. Which it was is told from the file itself (its format
    and the globals its pickle names), not from the wording of torch's exception."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not head:
        raise UserError(f"cannot read checkpoint {path}: the file is empty")
    if head != b"PK" and head[0] != 0x80:      # torch's zip format, or a pickle (its legacy format)
        raise UserError(f"cannot read checkpoint {path}: not a torch checkpoint (neither torch's zip format "
                        "nor a pickle)")
    try:
        with warnings.catch_warnings():     # torch warns about some refused files before raising: one line here
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        unsafe = unsafe_globals(path)
        if unsafe:
            raise UserError(f"refused to load checkpoint {path}: it needs {', '.join(unsafe)} to unpickle, which "
                            "could run code; only files of tensors and plain values are loaded (weights_only)") from None
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read checkpoint {path}: damaged or not a torch checkpoint "
                        f"({type(exc).__name__}: {reason[:200]})") from None
    if not isinstance(obj, dict):
        raise UserError(f"cannot read checkpoint {path}: not a checkpoint or state dict")
    if "model" not in obj:
        if not obj or not all(torch.is_tensor(v) for v in obj.values()):
            raise UserError(f"cannot read checkpoint {path}: not a checkpoint or state dict")
        obj = {"model": obj}
    obj["model"] = {k.removeprefix("module."): v for k, v in obj["model"].items()}
    return obj


def misfit(state: dict[str, torch.Tensor], model: str, num_classes: int, image_size: int) -> str | None:
    """Why the weights `state` do not fit `build_model(model, num_classes, image_size)`, in words
    naming the model they are when it is one of ours; None when they fit."""
    from models.zoo import identify_weights, weight_shapes
    want = weight_shapes(model, num_classes, image_size)
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want == have:
        return None
    found = identify_weights(state)
    if found is not None:
        name, classes, size = found
        return (f"it holds a {name} for {classes} classes" + (f" of {size}x{size} images" if name == "smallcnn" else "")
                + f", not a {model} for {num_classes} classes" + (f" of {image_size}x{image_size} images"
                                                                  if model == "smallcnn" else "")
                + (f"; give --model {name}" if name != model else "; give the --data it was trained on"))
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    other = [f"{k} {list(have[k])} vs {list(want[k])}" for k in want if k in have and have[k] != want[k]]
    parts = [f"{len(missing)} weights missing (first {missing[0]})" if missing else "",
             f"{len(extra)} unexpected (first {extra[0]})" if extra else "",
             f"{len(other)} of another shape (first {other[0]})" if other else ""]
    return f"its weights are not those of a {model} for {num_classes} classes: " + ", ".join(p for p in parts if p)


def check_fits(ckpt: dict, path: str, model: str, num_classes: int, image_size: int) -> None:
    """Refuse a checkpoint whose weights are not of the model the flags ask for (before any data load)."""
    why = misfit(ckpt["model"], model, num_classes, image_size)
    if why:
        raise UserError(f"checkpoint {path} does not fit --model {model}: {why}")


def load_model_state(model: torch.nn.Module, ckpt: dict, path: str) -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"checkpoint {path} does not fit this model: {' '.join(first[:2])}") from None


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


def remove_stale_temporaries(model_dir: Path | None, results: Path) -> None:
    """Delete what a kill during an atomic write left: temporary checkpoints in the model folder (None:
    not this run's, as for --eval-only) and temporary results / evaluation progress beside the results,
    each only when the process that wrote it is gone."""
    found = stale_temporaries(model_dir, lambda name: _NAME.fullmatch(name) is not None) if model_dir else []
    found += stale_temporaries(results.parent, lambda name: name in (results.name, progress_name(results)))
    for p in found:
        p.unlink(missing_ok=True)
    if found:
        print(f"removed {len(found)} temporary file(s) left by an interrupted write: "
              f"{', '.join(p.name for p in found[:3])}{' ...' if len(found) > 3 else ''}", flush=True)


def progress_name(results: Path) -> str:
    """The file name of the evaluation's progress beside the results JSON."""
    return results.with_suffix(PROGRESS_SUFFIX).name


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
    return state_fingerprint(model.state_dict())


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names and bytes of a state dict (weights_fingerprint of the model holding it)."""
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
