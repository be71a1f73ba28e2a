"""A GIF grid of evaluation episodes, side by side and in step: what ``sefm eval --video`` writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .rollout import PracticeEpisode

BORDER = {True: (40, 170, 60), False: (200, 50, 50)}  # green: ground-truth success, red: failure


def episode_grid_gif(
    episodes: Sequence[PracticeEpisode], path: str | Path, columns: int = 4, scale: int = 2, fps: int = 10
) -> Path:
    """One tile per episode (its camera frames, enlarged ``scale`` times), framed by its outcome once
    it has ended; an ended episode holds its last frame while the others play on."""
    if not episodes:
        raise ValueError("no episodes to draw")
    tiles = [[np.asarray(f if isinstance(f, np.ndarray) else f[0]) for f in ep.frames] for ep in episodes]
    h, w = tiles[0][0].shape[:2]
    rows = -(-len(tiles) // columns)
    pad = 3
    frames = []
    for t in range(max(len(frames_) for frames_ in tiles)):
        canvas = np.full((rows * (h * scale + 2 * pad), columns * (w * scale + 2 * pad), 3), 255, np.uint8)
        for i, (ep, ep_frames) in enumerate(zip(episodes, tiles, strict=True)):
            r, c = divmod(i, columns)
            y, x = r * (h * scale + 2 * pad), c * (w * scale + 2 * pad)
            if t >= len(ep_frames) - 1:
                canvas[y : y + h * scale + 2 * pad, x : x + w * scale + 2 * pad] = BORDER[ep.ground_truth_success]
            image = ep_frames[min(t, len(ep_frames) - 1)].repeat(scale, 0).repeat(scale, 1)
            canvas[y + pad : y + pad + h * scale, x + pad : x + pad + w * scale] = image
        frames.append(Image.fromarray(canvas))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
