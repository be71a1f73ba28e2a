"""A PNG of what the robot sees: frames from one demonstration of each task family."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .demonstrator import PushDemonstrator
from .language_table import LanguageTableEnv
from .tasks import FAMILIES


def demonstration_frames(family: str, seed: int, frames: int, size: int) -> tuple[str, list[np.ndarray], bool]:
    env = LanguageTableEnv(family, image_size=(size, size))
    demo = PushDemonstrator()
    try:
        for s in range(seed, seed + 50):  # the first seed whose demonstration succeeds
            obs, info = env.reset(seed=s)
            demo.reset(s)
            shots = [obs["rgb"]]
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(demo.act(env))
                shots.append(obs["rgb"])
                done = terminated or truncated
            if info["success"]:
                break
        picks = np.linspace(0, len(shots) - 1, frames).round().astype(int)
        return obs["instruction"], [shots[i] for i in picks], bool(info["success"])
    finally:
        env.close()


def demonstration_strips(out: str | Path, frames: int = 6, size: int = 160, seed: int = 0) -> Path:
    rows = []
    for family in FAMILIES:
        instruction, shots, success = demonstration_frames(family, seed, frames, size)
        strip = np.concatenate([np.pad(f, ((0, 0), (0, 4), (0, 0)), constant_values=255) for f in shots], axis=1)
        banner = np.full((26, strip.shape[1], 3), 255, np.uint8)
        text = f"{family}: '{instruction}'" + ("" if success else " (not solved)")
        cv2.putText(banner, text, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
        rows += [banner, strip, np.full((6, strip.shape[1], 3), 255, np.uint8)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR))
    return out
