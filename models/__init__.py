"""The model zoo (`models.zoo.build_model(name, num_classes)`): its names, kept free of torch so that
`--help` and the report start without importing it."""
from __future__ import annotations

MODEL_NAMES = ("resnet", "wideresnet", "smallcnn", "smallcnn-bn")
# Checkpoint folders, as in the official code.
MODEL_DIR_NAMES = {"resnet": "ResNet_18", "wideresnet": "WideResnet-34", "smallcnn": "SmallCNN", "smallcnn-bn": "SmallCNN-BN"}
