"""Every object's centre found at full resolution, and a chain's places moved onto them.

The chain says *which* object its words name: its pointer picks the right patch for the named
block in 92% of held-out boards (docs/results, session 30). It says *where* in that patch poorly:
near the goal the shipped reward model reads the named block with a robust sigma of 1.55 cm, where
#14's pooled detector bar needs about 0.5 (session 34), and 57 of 100 greedy failures are the
effector shuttling beside a block read 1.8 cm towards it (session 33). Where an object is, a small
convolutional net on the raw frame says better than a transformer over 8 px patches: it finds every
object as CenterNet does (Zhou et al. 2019), a heatmap per kind of thing (a movable object, the
effector) on 2 px cells with an offset inside the cell, trained on rendered boards whose every
place is known. A place the chain read then moves to the nearest centre of its kind within
``SNAP_RADIUS``, and the block and its target never to the same one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

KINDS = ("object", "effector")  # heatmap channels: anything a task moves; the end effector
CELL = 2  # pixels per heatmap cell: the chain's finest place unit at 96 px
SIGMA = 1.0  # the Gaussian of a centre's heatmap target, in cells
PEAK = 0.3  # a heatmap peak above this is a centre
SNAP_RADIUS = 1 / 12  # image fraction: one patch of the 96 px tower, about twice the reads' spread


class ObjectCentres(nn.Module):
    """Heatmap logits (B, kinds, H/2, W/2) and offsets (B, 2, H/2, W/2) of an RGB frame in [0, 1].
    Dilated convolutions at half resolution see about 37 px around a cell: a block is 7-10 px."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, stride=CELL, padding=1)]
        for dilation in (1, 2, 4, 1):
            layers += [nn.ReLU(), nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation)]
        self.body = nn.Sequential(*layers, nn.ReLU())
        self.head = nn.Conv2d(c, len(KINDS) + 2, 1)
        nn.init.constant_(self.head.bias[: len(KINDS)], -4.0)  # start saying "nothing here"

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.body(pixels - 0.5))
        return out[:, : len(KINDS)], out[:, len(KINDS) :].sigmoid()

    @torch.no_grad()
    def centres(self, pixels: torch.Tensor, peak: float = PEAK) -> list[dict[str, np.ndarray]]:
        """Per frame, each kind's centres (n, 2) as (column, row) in [0, 1] of the image."""
        heat, offset = self(pixels)
        heat = heat.sigmoid()
        peaks = (heat == F.max_pool2d(heat, 3, stride=1, padding=1)) & (heat > peak)
        rows, cols = heat.shape[-2:]
        found = []
        for b in range(len(pixels)):
            per_kind = {}
            for k, kind in enumerate(KINDS):
                r, c = torch.nonzero(peaks[b, k], as_tuple=True)
                xy = torch.stack([(c + offset[b, 0, r, c]) / cols, (r + offset[b, 1, r, c]) / rows], -1)
                per_kind[kind] = xy.cpu().numpy().astype(np.float64)
            found.append(per_kind)
        return found


def centre_targets(points: Sequence[dict[str, np.ndarray]], shape: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Training targets for frames whose centres are known, as ``centres`` returns them: Gaussian
    heatmaps (B, kinds, h, w), the offset inside each centre's cell (B, 2, h, w) and where it is set."""
    h, w = shape
    heat = torch.zeros(len(points), len(KINDS), h, w)
    offset = torch.zeros(len(points), 2, h, w)
    where = torch.zeros(len(points), 1, h, w)
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    for b, per_kind in enumerate(points):
        for k, kind in enumerate(KINDS):
            for x, y in np.asarray(per_kind.get(kind, np.zeros((0, 2)))).reshape(-1, 2):
                u, v = x * w, y * h
                if not (0 <= u < w and 0 <= v < h):
                    continue
                bump = torch.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * SIGMA**2))
                heat[b, k] = torch.maximum(heat[b, k], bump)
                i, j = int(v), int(u)
                heat[b, k, i, j] = 1.0
                offset[b, :, i, j] = torch.tensor([u - j, v - i])
                where[b, 0, i, j] = 1.0
    return heat, offset, where


def centre_loss(heat_logits: torch.Tensor, offset: torch.Tensor, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on the heatmaps plus the L1 of the centres' offsets,
    each per centre."""
    heat, true_offset, where = targets
    p = heat_logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    centre = heat.eq(1.0).float()
    focal = centre * (1 - p) ** 2 * p.log() + (1 - centre) * (1 - heat) ** 4 * p**2 * (1 - p).log()
    count = centre.sum().clamp(min=1.0)
    l1 = (where * (offset - true_offset).abs()).sum() / where.sum().clamp(min=1.0)
    return -focal.sum() / count + l1


def snap(places: np.ndarray, centres: Sequence[dict[str, np.ndarray]], radius: float = SNAP_RADIUS) -> np.ndarray:
    """A chain's places (B, 3, 2) (object, target, effector) moved each onto the nearest centre of its
    kind within ``radius``: the object and the target jointly, never onto one centre (the pair of
    distinct centres, or staying put, with the least summed squared move)."""
    out = np.array(places, dtype=np.float64, copy=True)
    for b, found in enumerate(centres):
        out[b, :2] = _snap_pair(out[b, :2], found.get("object", np.zeros((0, 2))), radius)
        effector = found.get("effector", np.zeros((0, 2)))
        if len(effector):
            gaps = np.linalg.norm(effector - out[b, 2], axis=-1)
            if gaps.min() <= radius:
                out[b, 2] = effector[gaps.argmin()]
    return out


def _snap_pair(pair: np.ndarray, objects: np.ndarray, radius: float) -> np.ndarray:
    options = [None, *range(len(objects))]  # None: the read stays where it is
    best, best_cost = pair, np.inf
    for choice in itertools.product(options, repeat=len(pair)):
        taken = [c for c in choice if c is not None]
        if len(taken) != len(set(taken)):
            continue
        moved = np.array([pair[i] if c is None else objects[c] for i, c in enumerate(choice)])
        gaps = np.linalg.norm(moved - pair, axis=-1)
        if (gaps > radius).any():
            continue
        cost = float(np.sum(np.where([c is None for c in choice], radius, gaps) ** 2))
        if cost < best_cost:
            best, best_cost = moved, cost
    return best


def install_object_centres(backbone, snap_places: bool, seed: int = 0, channels: int = 32) -> None:
    """Give ``backbone`` the centre finder (a submodule, so the checkpoint's weights carry it) when the
    config snaps its places and it has none; take it away when the config does not."""
    if not snap_places:
        if hasattr(backbone, "object_centres"):
            del backbone.object_centres
        return
    if not hasattr(backbone, "object_centres"):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            backbone.object_centres = ObjectCentres(channels)
