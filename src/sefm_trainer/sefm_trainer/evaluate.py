"""Evaluation: a greedy policy on held-out seeded episodes, judged by ground truth."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sefm_policy.model import EFM
from sefm_reward.detector import StepsToGoDetector

from .rollout import PracticeEpisode, run_episodes

HELD_OUT_SEED = 1_000_000  # evaluation seeds start here; demonstrations and practice use lower ones


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound at 0% and 100%, unlike the normal one)."""
    if n <= 0:
        raise ValueError("need at least one episode")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def success_summary(wins: Sequence[bool]) -> dict:
    """A success rate with its Wilson 95% interval, as the benchmarks print it."""
    low, high = wilson_interval(int(sum(wins)), len(wins))
    return {"success_rate": sum(wins) / len(wins), "wilson95": [round(low, 4), round(high, 4)]}


def summarise(episodes: Sequence[PracticeEpisode]) -> dict:
    n = len(episodes)
    truth = np.array([ep.ground_truth_success for ep in episodes])
    fired = np.array([ep.detector_fired_at is not None for ep in episodes])
    tp = int((truth & fired).sum())
    low, high = wilson_interval(int(truth.sum()), n)
    return {
        "episodes": n,
        "success_rate": float(truth.mean()),
        "wilson_low": round(low, 4),
        "wilson_high": round(high, 4),
        "wilson95": [round(low, 4), round(high, 4)],
        "mean_length": float(np.mean([ep.length for ep in episodes])),
        "detector_precision": tp / int(fired.sum()) if fired.any() else None,
        "detector_recall": tp / int(truth.sum()) if truth.any() else None,
    }


def evaluate(
    policy: EFM,
    detector: StepsToGoDetector | None,
    episodes: int = 100,
    task_family: str = "block2block",
    seed: int = HELD_OUT_SEED,
    keep: list | None = None,
    **kw,
) -> dict:
    """Greedy policy on seeds ``seed .. seed + episodes - 1``; ground truth ends episodes and scores
    them, the detector (if any) is scored against it (did it fire in successful episodes, and only
    in them). ``keep`` receives the episodes themselves (for a video)."""
    if episodes < 1:
        raise ValueError("evaluate at least one episode")
    seeds = range(seed, seed + episodes)
    done = run_episodes(
        policy, detector, seeds, task_family=task_family, greedy=True, end_on="ground_truth", progress="evaluate", **kw
    )
    if keep is not None:
        keep.extend(done)
    return summarise(done)
