"""Where each image token is, written into its projection into the decoder.

The decoder reads a place out of the image tokens it attends to. SigLIP adds its learned position
embedding at the tower's input, and after the tower's layers a token's row and column are no
longer a linear read-out; the decoder's own rotary positions count tokens in one dimension
(``frame * grid**2 + row * grid + column``). With ``EFMConfig.patch_positions`` the projector
adds a fixed 2-D sine-cosine code of the token's row and column (MAE's ``get_2d_sincos_pos_embed``;
LAVA too gives its image tokens 2-D positions), so a place is a linear read-out of whatever token
the words select. The code has no weights: the checkpoint's tensors are unchanged and the switch
lives in its config. Switched on for 400 steps of an 8-block chain trained without it, it changed
nothing measurable (docs/results, session 9); from the start it is not yet measured.
"""

from __future__ import annotations

import math

import torch
from torch import nn

BASE = 10000.0


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid * grid, dim) code of a row-major grid: the first half of the channels encode the row,
    the second the column, each as sines and cosines of geometrically spaced frequencies."""
    if dim % 4:
        raise ValueError(f"a 2-D sine-cosine code needs a width divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / BASE ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    index = torch.arange(grid, dtype=torch.float64)
    angles = index[:, None] * omega[None, :]  # (grid, quarter)
    axis = torch.cat([angles.sin(), angles.cos()], 1)  # (grid, dim / 2)
    rows = axis[:, None, :].expand(grid, grid, -1)
    cols = axis[None, :, :].expand(grid, grid, -1)
    return torch.cat([rows, cols], -1).reshape(grid * grid, dim).float()


class PositionedProjector(nn.Module):
    """PaliGemma's projector (the same ``linear``, so the same weight names) plus the fixed code
    while ``enabled``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.enabled = True
        self._code: torch.Tensor | None = None

    def code(self, tokens: int, like: torch.Tensor) -> torch.Tensor:
        grid = math.isqrt(tokens)
        if grid * grid != tokens:
            raise ValueError(f"patch positions need a square grid of image tokens, got {tokens}")
        if self._code is None or self._code.shape[0] != tokens or self._code.device != like.device:
            self._code = sincos_2d(grid, like.shape[-1]).to(like.device)
        return self._code.to(like.dtype)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        projected = self.linear(image_features)
        return projected + self.code(projected.shape[-2], projected) if self.enabled else projected


def set_patch_positions(backbone, enabled: bool) -> None:
    """Make the backbone's projector add the code or not, as the config says (idempotent)."""
    projector = backbone.model.multi_modal_projector
    if isinstance(projector, PositionedProjector):
        projector.enabled = enabled
    elif enabled:
        backbone.model.multi_modal_projector = PositionedProjector(projector.linear)
