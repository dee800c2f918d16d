"""Models in and out of RobustBench (robustbench 1.1.1, its CIFAR-10 L-inf zoo).

In: `load_zoo_model` loads a zoo entry through robustbench's own `load_model` from a local model folder
(`{zoo_dir}/{dataset}/{threat_model}/{name}.pt`; robustbench downloads it when it is missing, unless
download is off), names the layer the grad-cam package's CAMs read, and records the file's sha256 and
robustbench's version. Out: `export` writes one of our checkpoints in RobustBench's layout with its
model_info JSON and a model card (exchange/__main__.py is the command).

robustbench 1.1.1 imports `autoattack`, the import name of the authors' AutoAttack when installed from
its repository; the package index's `pyautoattack` (0.2.0, this project's) installs the same code as
`pyautoattack`, so `import_robustbench` aliases it before the first import. robustbench also imports
`pkg_resources` (setuptools < 81: requirements.txt).
"""
from __future__ import annotations

import difflib
import hashlib
import sys
import warnings
from pathlib import Path

from utils.infra.errors import UserError

ZOO_PREFIX = "robustbench:"
# The layer the CAMs of a zoo architecture read (by the model's class name): the last block before pooling.
CAM_LAYERS = {"ResNet": "layer4", "PreActResNet": "layer4", "WideResNet": "block3"}
# Our architectures as RobustBench defines them: the class its zoo builds, which loads our state dict strictly.
ROBUSTBENCH_ARCHITECTURES = {"resnet": "ResNet-18 (robustbench.model_zoo.architectures.resnet.ResNet18)",
                             "wideresnet": "WideResNet-34-10 (robustbench.model_zoo.architectures.wide_resnet)"}


def is_zoo_name(text: str | None) -> bool:
    return bool(text) and text.startswith(ZOO_PREFIX)


def import_robustbench():
    """robustbench, importable beside pyautoattack (see the module doc); one line if it is not installed."""
    try:
        import pyautoattack
        import pyautoattack.state
        sys.modules.setdefault("autoattack", pyautoattack)
        sys.modules.setdefault("autoattack.state", pyautoattack.state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # pkg_resources' deprecation, timm's
            import robustbench
            import robustbench.utils  # noqa: F401
    except ImportError as exc:
        raise UserError(f"robustbench cannot be imported ({exc}); pip install -r requirements.txt") from None
    return robustbench


def robustbench_version() -> str:
    from importlib.metadata import version
    return version("robustbench")


def zoo_entries(dataset: str = "cifar10", threat_model: str = "Linf") -> dict:
    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    return model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]


def zoo_file(name: str, zoo_dir: str | Path, dataset: str = "cifar10", threat_model: str = "Linf") -> Path:
    """Where robustbench's load_model reads (and downloads) the entry's weights."""
    return Path(zoo_dir) / dataset / threat_model / f"{name}.pt"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_zoo_model(name: str, zoo_dir: str | Path, download: bool, dataset: str = "cifar10",
                    threat_model: str = "Linf") -> Path:
    """Before any data are loaded: the name is in the zoo, and its file is there (or may be downloaded)."""
    entries = zoo_entries(dataset, threat_model)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3)
        raise UserError(f"{name} is not in RobustBench's {dataset} {threat_model} zoo"
                        + (f"; did you mean {', '.join(close)}?" if close else f" ({len(entries)} entries)"))
    path = zoo_file(name, zoo_dir, dataset, threat_model)
    if not path.is_file() and not download:
        raise UserError(f"{path} is missing (--no-download: robustbench would download it there); put the file "
                        "there or choose --zoo-dir")
    return path


def load_zoo_model(name: str, zoo_dir: str | Path, download: bool = True, cam_layer: str | None = None,
                   dataset: str = "cifar10", threat_model: str = "Linf"):
    """(the zoo model in eval mode on the CPU, its record) through robustbench's load_model. Every mistake
    is one line: an unknown name, a missing file, a file robustbench's architecture cannot load strictly
    (another architecture or dataset), a pickle that needs code to load."""
    import pickle

    import torch

    from utils.infra.checkpoint import load_checkpoint
    path = check_zoo_model(name, zoo_dir, download, dataset, threat_model)
    if path.is_file():
        load_checkpoint(path, torch.device("cpu"))   # a pickle that needs code is refused here, in our words
    robustbench = import_robustbench()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = robustbench.utils.load_model(name, model_dir=str(zoo_dir), dataset=dataset,
                                                 threat_model=threat_model)
    except pickle.UnpicklingError as exc:
        raise UserError(f"refused to load {path}: {str(exc).splitlines()[0]} (only plain tensors are loaded)") from None
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path} does not fit {name}'s architecture in robustbench ({first})") from None
    except Exception as exc:       # robustbench's download (no network), a damaged file, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"robustbench could not load {name} from {path}: {type(exc).__name__}: {reason}") from None
    architecture = type(model).__name__
    layer = cam_layer or CAM_LAYERS.get(architecture)
    if layer is not None:
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise UserError(f"{name} ({architecture}) has no layer {layer!r} for the CAMs; name one with "
                            "--cam-layer") from None
        model.cam_layer = layer        # what cam/backend.py's grad-cam package CAMs read
    record = {"name": name, "file": str(path.resolve()), "sha256": sha256(path), "architecture": architecture,
              "cam_layer": layer, "dataset": dataset, "threat_model": threat_model,
              "robustbench": robustbench_version()}
    return model.eval(), record
