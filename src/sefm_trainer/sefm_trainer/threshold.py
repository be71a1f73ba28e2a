"""The success threshold s measured on episode bags whose outcome is known (demonstrations the
reward model was not trained on): the d of every frame, then ``sefm_reward.calibration.sweep``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator
from tqdm import tqdm

from sefm_interfaces.typed_config import StrictModel, UsageError
from sefm_policy.embodiment import observation_at
from sefm_policy.model import EFM
from sefm_reward.calibration import plot_sweep, sweep
from sefm_reward.detector import StepsToGoDetector

from .bag_reader import load_episodes
from .dataset import timeline


def episode_distances(
    detector: StepsToGoDetector, folders: Sequence[str | Path], progress: bool = True
) -> tuple[list, list, list]:
    """d(o_t, g) for frames 0..T of every episode under ``folders`` (pooled: demonstrations beside
    a policy's recorded failures), whether each succeeded, and the frame it reached its goal. A
    demonstration held past its goal is read up to the last frame that kept it done: on those
    frames a firing is right."""
    episodes = [
        ep for folder in folders for ep in load_episodes(folder, progress=False).episodes if ep.meta.success is not None
    ]
    if not episodes:
        raise UsageError(f"no episodes with a known outcome (ground-truth success) in {', '.join(map(str, folders))}")
    distances = []
    for ep in tqdm(episodes, desc="d(o,g)", unit="ep", disable=not progress):
        frames, states = timeline(ep)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in range(len(frames))]
        distances.append(detector.episode_distances(obs[: ep.last_done + 1]))
    return distances, [ep.meta.success for ep in episodes], [ep.goal_at for ep in episodes]


class CalibrationConfig(StrictModel):
    """How s is chosen: the sweep and what a precise enough threshold is."""

    tolerance: int = Field(2, ge=0, description="firing this many steps before the goal still counts")
    min_precision: float = Field(0.9, gt=0, le=1, description="s is the highest-recall threshold at this precision")
    max_threshold: float = Field(20.0, gt=0, description="the largest s tried")
    step: float = Field(0.5, gt=0, description="spacing of the thresholds tried")

    @model_validator(mode="after")
    def _step_fits(self) -> CalibrationConfig:
        if self.step > self.max_threshold:
            raise ValueError(f"step ({self.step}) must not exceed max_threshold ({self.max_threshold})")
        return self


def calibrate_threshold(
    reward_model: EFM,
    data: str | Path | Sequence[str | Path],
    out: str | Path,
    cfg: CalibrationConfig | None = None,
    progress: bool = True,
) -> dict:
    """Sweep s over step, 2·step, .., max_threshold; writes calibration.json and .png to ``out``."""
    cfg = cfg or CalibrationConfig()
    folders = [str(data)] if isinstance(data, str | Path) else [str(f) for f in data]
    distances, successes, goals = episode_distances(StepsToGoDetector(reward_model, 0.0), folders, progress)
    thresholds = np.arange(cfg.step, cfg.max_threshold + cfg.step / 2, cfg.step)
    result = {"data": folders[0] if len(folders) == 1 else folders} | sweep(
        distances, successes, thresholds, cfg.tolerance, cfg.min_precision, goals
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(result, indent=2))
    plot_sweep(result, out / "calibration.png")
    return result
