"""The conventional control: BioNIC's small convolutional front end, then plain dense layers."""

from __future__ import annotations

import torch
from torch import nn


class BaselineCNN(nn.Module):
    """[Conv(8) -> pool] -> [Conv(16) -> pool] -> dense layers -> 7 classes; no biological features.

    With the defaults it has 1,382,757 parameters, next to the 1,381,223 of the paper's baseline.

    Args:
        conv_channels: filters of each 3x3 convolution (the paper's front end: 8 then 16).
        hidden: widths of the dense layers after the pooled feature map.
        dropout: dropout before each dense layer.
        batch_norm: batch normalization after each convolution and dense layer (conventional practice;
            BioNIC's counterpart is LayerNorm, one of its biological switches).
        num_classes: output classes.
        image_size: input side length in pixels.
    """

    def __init__(self, conv_channels: list[int] = [8, 16], hidden: list[int] = [538, 256], dropout: float = 0.1, batch_norm: bool = True,
                 num_classes: int = 7, image_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c in conv_channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c) if batch_norm else nn.Identity(), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        width = c_in * (image_size // 2 ** len(conv_channels)) ** 2
        dense: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            dense += [nn.Dropout(dropout), nn.Linear(width, h), nn.BatchNorm1d(h) if batch_norm else nn.Identity(),
                      nn.ReLU(inplace=True)]
            width = h
        dense += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.classifier = nn.Sequential(*dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
