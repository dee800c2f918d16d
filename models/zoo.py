"""Model zoo: `build_model(name, num_classes)`. Inputs are in [0, 1]; no normalisation layer.

Every model splits its forward into `features(x)` (up to and including the CAM layer) and
`head(features)` (the rest), so a CAM is one forward and one gradient with respect to the features,
with no hooks (capturable in a CUDA graph, compilable)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn

from models import MODEL_NAMES
from models.resnet import resnet18
from models.smallcnn import SmallBNCNN, SmallCNN
from models.wideresnet import WideResNet


def build_model(name: str, num_classes: int, image_size: int = 32) -> nn.Module:
    if name == "resnet":
        return resnet18(num_classes)
    if name == "wideresnet":
        return WideResNet(34, num_classes, 10)
    if name == "smallcnn":
        return SmallCNN(num_classes, image_size=image_size)
    if name == "smallcnn-bn":
        return SmallBNCNN(num_classes)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


def weight_shapes(name: str, num_classes: int, image_size: int = 32) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict of `build_model(...)`, built on the meta device (no memory,
    no initialisation cost), to check a checkpoint before any data are loaded."""
    with torch.device("meta"):
        model = build_model(name, num_classes, image_size)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def identify_weights(state: dict[str, torch.Tensor]) -> tuple[str, int, int] | None:
    """(model name, classes, image size) of the zoo model whose state dict `state` is, if any; the
    class count is read from the last matrix (every model ends in its classifier)."""
    matrices = [v.shape[0] for v in state.values() if torch.is_tensor(v) and v.dim() == 2]
    if not matrices:
        return None
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for name in MODEL_NAMES:
        for size in (32, 64):
            if weight_shapes(name, matrices[-1], size) == shapes:
                return name, matrices[-1], size
    return None


def cam_layer(model: nn.Module) -> nn.Module:
    """The module whose activations the CAM is computed from (layer4 / block3 / block2)."""
    return model.get_submodule(model.cam_layer)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the block (BatchNorm uses and keeps its running statistics,
    dropout is off), and back in the mode it had afterwards, also after an exception."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Autocast(nn.Module):
    """The wrapped model under torch.autocast (bf16 on CUDA and on the CPU); the logits come back as
    float32, so losses, input gradients, perturbations and projections stay in fp32. The weight cache
    is off, as CUDA-graph capture requires. Shares the wrapped model's parameters and mode."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype, cache_enabled=False):
            out = self.model(x)
        return out.float()
