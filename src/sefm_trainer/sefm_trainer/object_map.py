"""Where every object is, per patch of the vision tower: a dense perception objective.

A reasoning policy's chain names three places per example, so its vision tower learns where
things are from three place tokens at a time, and told the true places the 8-block chain acts in
94% of episodes where its own places give 0% (docs/results, 2026-12-04): seeing is the gap. This
objective gives the tower every object of every frame at once, from the simulator's ground truth
and without words, the way CenterNet trains a detector: for each known object, which patch holds
its centre (a softmax over the patch grid) and where in that patch (a SUB x SUB sub-cell). The head
is a training device: it lives beside the EFM, in the trainer's resume state, never in a
checkpoint, so the policy stays a plain PaliGemma.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sefm_policy.losses import LossOutput
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_sim_bridge.scene import BLOCKS, image_point

EFFECTOR = "effector"
# Every object the head knows, in a fixed order: the eight blocks, the banana, the effector.
OBJECT_NAMES = (*(f"{colour} {shape}" for colour, shape in BLOCKS), "banana", EFFECTOR)
SUB = 4  # sub-cells per patch side: 2 px at 96 px with 8 px patches


class ObjectMap(nn.Module):
    """Patch features (B, P, H) -> per object, logits over patches (B, K, P) and over the SUB x SUB
    sub-cells of each patch (B, K, P, SUB²)."""

    def __init__(self, hidden_size: int, objects: int = len(OBJECT_NAMES)) -> None:
        super().__init__()
        self.objects = objects
        self.proj = nn.Linear(hidden_size, objects * (1 + SUB * SUB))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, p, _ = features.shape
        out = self.proj(features).view(b, p, self.objects, 1 + SUB * SUB).permute(0, 2, 1, 3)
        return out[..., 0], out[..., 1:]


def object_targets(objects: Mapping[str, Sequence[float]], effector, grid: int) -> np.ndarray:
    """(K, 2) targets of one frame from board places in metres: the patch index (row-major on a
    ``grid`` x ``grid`` patch grid) of each object's centre and its sub-cell; -1 where the object is
    not on the board (another scene's, or parked off it)."""
    targets = np.full((len(OBJECT_NAMES), 2), -1, dtype=np.int64)
    places = {**objects, EFFECTOR: effector}
    for k, name in enumerate(OBJECT_NAMES):
        if name not in places:
            continue
        column, row = image_point(places[name])
        if not (0 <= column < 1 and 0 <= row < 1):
            continue
        r, c = row * grid, column * grid
        targets[k] = (int(r) * grid + int(c), int((r % 1) * SUB) * SUB + int((c % 1) * SUB))
    return targets


def step_targets(episode, t: int, grid: int) -> np.ndarray:
    """``object_targets`` at step ``t`` of a demonstration that recorded its objects."""
    return object_targets({name: track[t] for name, track in episode.objects.items()}, episode.effector[t], grid)


def object_map_loss(model: EFM, observations: Sequence[Observation], targets, head: ObjectMap) -> LossOutput:
    """Cross-entropy of each present object's patch, plus of its sub-cell within the true patch,
    read off the tower's features of the current frame."""
    target = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=model.device)
    cells, subs = head(model.image_features(observations)[:, 0])
    present = target[..., 0] >= 0
    cell, sub = target[..., 0].clamp(min=0), target[..., 1].clamp(min=0)
    cell_nll = nn.functional.cross_entropy(cells.flatten(0, 1), cell.flatten(), reduction="none").view_as(cell)
    at_cell = subs.gather(2, cell[..., None, None].expand(-1, -1, 1, subs.shape[-1]))[:, :, 0]
    sub_nll = nn.functional.cross_entropy(at_cell.flatten(0, 1), sub.flatten(), reduction="none").view_as(sub)
    weight = present.float() / present.sum().clamp(min=1)
    loss = ((cell_nll + sub_nll) * weight).sum()
    cell_hit = (cells.argmax(-1) == cell) & present
    exact = cell_hit & (at_cell.argmax(-1) == sub)
    n = present.sum().clamp(min=1).item()
    return LossOutput(
        loss,
        {
            "objects/loss": loss.item(),
            "objects/cell_acc": cell_hit.sum().item() / n,
            "objects/exact": exact.sum().item() / n,
        },
    )
