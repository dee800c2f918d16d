"""The small CNN of the TRADES paper (4 conv + 3 fc), here for RGB inputs, so real runs fit on a CPU.

The convolutions are split into two blocks so that `block2` (the last conv block, before the
final max-pool) can serve as the CAM layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    cam_layer = "block2"

    def __init__(self, num_classes: int = 10, image_size: int = 32, drop: float = 0.5) -> None:
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
        )
        self.pool = nn.MaxPool2d(2, 2)
        side = ((image_size - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Linear(64 * side * side, 200), nn.ReLU(), nn.Dropout(drop),
            nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        # As in TRADES: the last layer starts at zero.
        nn.init.zeros_(self.classifier[-1].weight)
        nn.init.zeros_(self.classifier[-1].bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of block2, the CAM layer."""
        return self.block2(self.block1(x))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(features).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallBNCNN(nn.Module):
    """A CPU-sized CNN with BatchNorm for the CPU-scale study: three conv-BN-ReLU blocks (width, 2x and
    4x width channels: 16, 32, 64 by default; max-pool after the first two), global average pooling, one
    linear layer. About 2.8 M multiply-adds per 32x32 image at width 16 (TRADES' small CNN: 15 M), and
    BatchNorm lets it learn at 8/255 within a few epochs, where the small CNN (its last layer starts at
    zero) stays near chance."""
    cam_layer = "block3"

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.block1 = nn.Sequential(block(3, width), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(block(width, 2 * width), nn.MaxPool2d(2))
        self.block3 = block(2 * width, 4 * width)
        self.linear = nn.Linear(4 * width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of block3 (8x8 for 32x32 images), the CAM layer."""
        return self.block3(self.block2(self.block1(x)))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
