"""Augmentation of whole batches as tensors on the training device.

One affine warp per batch (random crop-with-padding as a shift, horizontal flip, small rotation
and scale) and vectorized random erasing: no per-image Python work, so a 2-core CPU or a GPU
never waits for the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Augmentation:
    crop_padding: int = 4  # pixels: random crop of the zero-padded image, as a random shift
    hflip: bool = True
    rotation: float = 10.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.1  # zoom uniform in [1 - scale, 1 + scale]
    erasing: float = 0.25  # probability of erasing one rectangle per image
    erasing_area: tuple[float, float] = (0.02, 0.15)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [B, C, H, W] -> augmented copy."""
        x = self.warp(x)
        if self.erasing > 0:
            x = self.erase(x)
        return x

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        dev = x.device
        if not (self.crop_padding or self.hflip or self.rotation or self.scale):
            return x
        angle = (torch.rand(b, device=dev) * 2 - 1) * math.radians(self.rotation)
        zoom = 1 + (torch.rand(b, device=dev) * 2 - 1) * self.scale
        flip = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0) if self.hflip else torch.ones(b, device=dev)
        # Integer pixel shifts, as RandomCrop(padding=p) would give; in grid units 2/size per pixel.
        shift = torch.randint(-self.crop_padding, self.crop_padding + 1, (b, 2), device=dev).float()
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, shift[:, 0] * 2 / w], dim=1),
                torch.stack([sin * flip, cos, shift[:, 1] * 2 / h], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        dev = x.device
        lo, hi = self.erasing_area
        area = (lo + torch.rand(b, device=dev) * (hi - lo)) * h * w
        aspect = torch.exp((torch.rand(b, device=dev) * 2 - 1) * math.log(3.0))
        eh = (area * aspect).sqrt().clamp(1, h)
        ew = (area / aspect).sqrt().clamp(1, w)
        top = torch.rand(b, device=dev) * (h - eh)
        left = torch.rand(b, device=dev) * (w - ew)
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        box = (
            (rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
            & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1))
        )
        box &= (torch.rand(b, device=dev) < self.erasing).view(b, 1, 1)
        return x.masked_fill(box.unsqueeze(1), 0.0)
