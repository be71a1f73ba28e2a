"""The success threshold s measured on episode bags whose outcome is known (demonstrations the
reward model was not trained on): the d of every frame, then ``sefm_reward.calibration.sweep``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sefm_policy.embodiment import observation_at
from sefm_policy.model import EFM
from sefm_reward.calibration import plot_sweep, sweep
from sefm_reward.detector import StepsToGoDetector

from .bag_reader import load_episodes
from .dataset import timeline


def episode_distances(detector: StepsToGoDetector, data: str | Path, progress: bool = True) -> tuple[list, list]:
    """d(o_t, g) for frames 0..T of every episode under ``data``, and whether each succeeded."""
    loaded = load_episodes(data, progress=False)
    episodes = [ep for ep in loaded.episodes if ep.meta.success is not None]
    if not episodes:
        raise ValueError(f"no episodes with a known outcome (ground-truth success) in {data}")
    distances = []
    for ep in tqdm(episodes, desc="d(o,g)", unit="ep", disable=not progress):
        frames, states = timeline(ep)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in range(len(frames))]
        distances.append(detector.distances(obs))
    return distances, [ep.meta.success for ep in episodes]


def calibrate_threshold(
    reward_model: EFM,
    data: str | Path,
    out: str | Path,
    max_threshold: float = 20.0,
    step: float = 0.5,
    tolerance: int = 2,
    min_precision: float = 0.9,
    progress: bool = True,
) -> dict:
    """Sweep s over step, 2·step, .., max_threshold; writes calibration.json and .png to ``out``."""
    if not 0 < step <= max_threshold:
        raise ValueError(f"need 0 < step <= max_threshold, got step {step}, max_threshold {max_threshold}")
    distances, successes = episode_distances(StepsToGoDetector(reward_model, 0.0), data, progress)
    thresholds = np.arange(step, max_threshold + step / 2, step)
    result = {"data": str(data)} | sweep(distances, successes, thresholds, tolerance, min_precision)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(result, indent=2))
    plot_sweep(result, out / "calibration.png")
    return result
