"""Synthetic observations for tests and benchmarks: random frames, real instruction shapes."""

from __future__ import annotations

import numpy as np

from .prompts import Observation

COLORS = ["red", "blue", "green", "yellow"]
SHAPES = ["cube", "moon", "star", "pentagon"]


def _frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def table_observations(n: int, seed: int = 0, size: int = 96) -> list[Observation]:
    """LanguageTable steps with distinct frames and instructions of different lengths (so batches pad)."""
    rng = np.random.default_rng(seed)
    return [
        Observation(
            images=(_frame(rng, size, size), _frame(rng, size, size)),
            instruction=f"push the {COLORS[i % 4]} {SHAPES[i // 4 % 4]} " + "close to the " * (i % 3) + "blue cube",
        )
        for i in range(n)
    ]


def aloha_observations(n: int, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    return [
        Observation(
            images=tuple(_frame(rng, 48, 64) for _ in range(4)),
            instruction="insert the peg into the socket",
            state=rng.uniform(-1, 1, 14),
        )
        for _ in range(n)
    ]
