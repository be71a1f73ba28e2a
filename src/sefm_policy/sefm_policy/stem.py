"""The tiny SigLIP tower's first layer, in place of its plain linear patch embedding.

Two choices, saved in the checkpoint's config (the backbone stays a
``PaliGemmaForConditionalGeneration``; only ``patch_embedding`` is swapped):

- ``coordinates``: six more input channels, each normalised colour channel times the pixel's x
  and times its y (in [-1, 1]). After background normalisation the empty board is zero, so it
  carries nothing, and each object carries where it is, per colour, as content. Through the
  linear patch embedding the image tokens then sum to the colour-weighted centroids of what is
  on the board: a location is a linear read-out even before the decoder has learned where to
  look (CoordConv, Liu et al. 2018, shows convolutions failing to output coordinates without
  such channels, as our tiny model fails to point).
- ``stem: conv``: stride-2 3x3 convolutions down to the patch grid instead of one linear map per
  patch (early convolutions, Xiao et al. 2021): more shape detail per token, but slower to start
  localising on our boards (docs/results).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import EFMConfig


class Stem(nn.Module):
    """Pixels (B, 3, S, S) -> patch features (B, hidden, S/patch, S/patch), like SigLIP's patch conv."""

    def __init__(self, kind: str, hidden_size: int, patch_size: int, channels: int, coordinates: bool) -> None:
        super().__init__()
        self.coordinates = coordinates
        width = 9 if coordinates else 3
        if kind == "patch":
            self.layers = nn.Sequential(nn.Conv2d(width, hidden_size, kernel_size=patch_size, stride=patch_size))
            return
        layers, depth = [], int(math.log2(patch_size))
        for i in range(depth):
            out = hidden_size if i == depth - 1 else min(channels * 2**i, hidden_size)
            layers.append(nn.Conv2d(width, out, kernel_size=3, stride=2, padding=1))
            if i < depth - 1:
                layers.append(nn.GELU())
            width = out
        self.layers = nn.Sequential(*layers)

    @property
    def weight(self):
        """SigLIP casts its input to ``patch_embedding.weight.dtype``."""
        return self.layers[-1].weight

    def forward(self, pixel_values):
        if self.coordinates:
            _, _, h, w = pixel_values.shape
            ys = torch.linspace(-1, 1, h, device=pixel_values.device, dtype=pixel_values.dtype).view(1, 1, h, 1)
            xs = torch.linspace(-1, 1, w, device=pixel_values.device, dtype=pixel_values.dtype).view(1, 1, 1, w)
            pixel_values = torch.cat([pixel_values, pixel_values * xs, pixel_values * ys], 1)
        return self.layers(pixel_values)


def install_stem(backbone, config: EFMConfig) -> None:
    """Give a tiny backbone the configured stem; SigLIP's own patch conv is kept for a plain patch
    stem without coordinates (and for every pretrained backbone)."""
    v = config.vision
    if config.pretrained_path is not None or (v.stem == "patch" and not v.coordinates):
        return
    backbone.model.vision_tower.embeddings.patch_embedding = Stem(
        v.stem, v.hidden_size, v.patch_size, v.stem_channels, v.coordinates
    )
