"""Model zoo: `build_model(name, num_classes)`. Inputs are in [0, 1]; no normalisation layer."""
from __future__ import annotations

import torch.nn as nn

from models.resnet import resnet18
from models.smallcnn import SmallCNN
from models.wideresnet import WideResNet

MODEL_NAMES = ("resnet", "wideresnet", "smallcnn")
# Names of the checkpoint folders, as in the official code.
MODEL_DIR_NAMES = {"resnet": "ResNet_18", "wideresnet": "WideResnet-34", "smallcnn": "SmallCNN"}


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
