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

from common.errors import UserError
from common.extras import require
from runner.infra.files import hash_file

ZOO_PREFIX = "robustbench:"
# The layer the CAMs of a zoo architecture read (by the class or a base class of the model): the last block
# before pooling. The zoo's own subclasses (Rice2020OverfittingNet, ...) find theirs through their bases.
CAM_LAYERS = {"ResNet": "layer4", "PreActResNet": "layer4", "WideResNet": "block3", "DMWideResNet": "layer",
              "DMPreActResNet": "layer_3"}
# Our architectures as RobustBench defines them: the class its zoo builds, which loads our state dict strictly.
ROBUSTBENCH_ARCHITECTURES = {"resnet": "ResNet-18 (robustbench.model_zoo.architectures.resnet.ResNet18)",
                             "wideresnet": "WideResNet-34-10 (robustbench.model_zoo.architectures.wide_resnet)"}


def import_robustbench():
    """robustbench, importable beside pyautoattack (see the module doc); one line if it is not installed."""
    require("robustbench", "RobustBench's zoo and export (exchange/)")
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
        raise UserError(f"robustbench cannot be imported ({exc}); pip install -e \".[robustbench]\"") from None
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
    return hash_file(hashlib.sha256(), path).hexdigest()


def cam_layer_of(model) -> str | None:
    """The CAM layer of a zoo model by its class or the nearest base class in CAM_LAYERS; None if none."""
    for cls in type(model).__mro__:
        if cls.__name__ in CAM_LAYERS:
            return CAM_LAYERS[cls.__name__]
    return None


def check_zoo_model(name: str, zoo_dir: str | Path, download: bool, dataset: str = "cifar10",
                    threat_model: str = "Linf") -> Path:
    """Before any data are loaded: the name is in the zoo, it is one file (not an ensemble), and its
    file is there (or may be downloaded)."""
    entries = zoo_entries(dataset, threat_model)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3)
        raise UserError(f"{name} is not in RobustBench's {dataset} {threat_model} zoo"
                        + (f"; did you mean {', '.join(close)}?" if close else f" ({len(entries)} entries)"))
    if isinstance(entries[name].get("gdrive_id"), list):
        raise UserError(f"{name} is an ensemble of {len(entries[name]['gdrive_id'])} models in RobustBench; "
                        "one model a run here")
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

    from runner.infra.checkpoint import unsafe_globals
    path = check_zoo_model(name, zoo_dir, download, dataset, threat_model)
    needs = unsafe_globals(path) if path.is_file() else []
    if needs:                 # read from the file without running it; robustbench's own reader does the rest
        raise UserError(f"refused to load checkpoint {path}: it needs {', '.join(needs[:3])} to unpickle "
                        "(only plain tensors are loaded)")
    robustbench = import_robustbench()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = robustbench.utils.load_model(name, model_dir=str(zoo_dir), dataset=dataset,
                                                 threat_model=threat_model)
    except pickle.UnpicklingError as exc:
        raise UserError(f"refused to load {path}: {str(exc).splitlines()[0]} (only plain tensors are loaded)") from None
    except RuntimeError as exc:
        text = str(exc).strip()
        if "state_dict" not in text:
            raise UserError(f"robustbench could not load {name} from {path}: {text.splitlines()[0]}") from None
        raise UserError(f"{path} does not fit {name}'s architecture in robustbench ({text.splitlines()[0]}; "
                        f"{text.splitlines()[1].strip()[:120] if len(text.splitlines()) > 1 else ''})") from None
    except Exception as exc:       # robustbench's download (no network), a damaged file, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"robustbench could not load {name} from {path}: {type(exc).__name__}: {reason}") from None
    architecture = type(model).__name__
    layer = cam_layer or cam_layer_of(model)
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
