"""Model zoo: `build_model(name, num_classes)`. Inputs are in [0, 1]; no normalisation layer.

Every model splits its forward into `features(x)` (up to and including the CAM layer) and
`head(features)` (the rest), so a CAM is one forward and one gradient with respect to the features,
with no hooks (capturable in a CUDA graph, compilable)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn

from models.resnet import resnet18
from models.smallcnn import SmallCNN
from models.wideresnet import WideResNet
from utils.names import MODEL_DIR_NAMES, MODEL_NAMES  # noqa: F401 (re-exported)


def build_model(name: str, num_classes: int, image_size: int = 32) -> nn.Module:
    if name == "resnet":
        return resnet18(num_classes)
    if name == "wideresnet":
        return WideResNet(34, num_classes, 10)
    if name == "smallcnn":
        return SmallCNN(num_classes, image_size=image_size)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


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
