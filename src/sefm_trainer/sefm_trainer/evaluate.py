"""Evaluation: a greedy policy on held-out seeded episodes, judged by ground truth."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.stats import binom

from sefm_interfaces.typed_config import StrictModel
from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.model import EFM
from sefm_reward.calibration import fired_early
from sefm_reward.detector import DEFAULT_THRESHOLD, StepsToGoDetector
from sefm_sim_bridge.envs import LANGUAGE_TABLE_FAMILIES

from .rollout import PracticeEpisode, run_episodes
from .rollout_bags import write_rollout

HELD_OUT_SEED = 1_000_000  # evaluation seeds start here; demonstrations and practice use lower ones


class EvalConfig(StrictModel):
    """``sefm eval``: what LeRobot users know as ``lerobot-eval``."""

    checkpoint: str = Field(..., description="policy checkpoint (Stage 1 best_bc or a Stage 2 policy)")
    task_family: Literal[LANGUAGE_TABLE_FAMILIES] = "block2block"
    episodes: int = Field(200, gt=0)
    seed: int = Field(HELD_OUT_SEED, ge=0, description="first seed (the default starts the held-out range)")
    max_steps: int = Field(100, gt=0)
    place_reads: Literal["single", "half_patch"] | None = Field(
        None, description="how a reasoning chain says its places (EFMConfig.place_reads); None: as the checkpoint says"
    )
    reward_model: str | None = Field(None, description="also score this steps-to-go detector against ground truth")
    success_threshold: float = Field(DEFAULT_THRESHOLD, ge=0, description="with reward_model: s")
    out: str | None = Field(None, description="also write the JSON here")
    video: str | None = Field(None, description="GIF grid of the first episodes")
    video_episodes: int = Field(8, gt=0, description="episodes in the video grid")
    record: str | None = Field(None, description="folder to write the episodes into as episode bags")
    record_only: Literal["failures", "successes"] | None = Field(
        None, description="with record: write only these (e.g. failures, to calibrate a detector on)"
    )
    compare: str | None = Field(
        None, description="an earlier evaluation's JSON of the same seeds (e.g. Stage 1's): compare seed by seed"
    )


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


def summarise(episodes: Sequence[PracticeEpisode], detector: bool = True) -> dict:
    """Ground-truth success and, where a detector ran (``detector``), its precision and recall; without
    one they are None, not a recall of 0 for a detector that never existed. A firing is right as
    calibration judges it (``fired_early``): in a successful episode, at most two steps before the goal.
    Earlier, practice would have ended the episode there, short of the goal (``detector_early``:
    the share of successful episodes it fired in too early)."""
    n = len(episodes)
    truth = np.array([ep.ground_truth_success for ep in episodes])
    fired = np.array([ep.detector_fired_at is not None for ep in episodes])
    early = np.array(
        [
            ep.ground_truth_success
            and ep.detector_fired_at is not None
            and fired_early(ep.detector_fired_at, ep.length)
            for ep in episodes
        ]
    )
    tp = int((truth & fired & ~early).sum())
    low, high = wilson_interval(int(truth.sum()), n)
    return {
        "episodes": n,
        "success_rate": float(truth.mean()),
        "wilson_low": round(low, 4),
        "wilson_high": round(high, 4),
        "wilson95": [round(low, 4), round(high, 4)],
        "mean_length": float(np.mean([ep.length for ep in episodes])),
        "detector_precision": tp / int(fired.sum()) if detector and fired.any() else None,
        "detector_recall": tp / int(truth.sum()) if detector and truth.any() else None,
        "detector_early": int(early.sum()) / int(truth.sum()) if detector and truth.any() else None,
        "per_episode": [
            {"seed": ep.seed, "success": bool(ok), "length": ep.length} for ep, ok in zip(episodes, truth, strict=True)
        ],
    }


def outcomes_by_seed(evaluation: dict) -> dict[int, bool]:
    """An evaluation's JSON as {seed: success}."""
    if not evaluation.get("per_episode"):
        raise ValueError("an evaluation to compare needs per_episode records (sefm eval writes them)")
    return {ep["seed"]: ep["success"] for ep in evaluation["per_episode"]}


def paired_comparison(before: dict, after: dict) -> dict:
    """Two evaluations (``summarise``'s JSON) on the same seeds, seed by seed: how many failures the
    second turned into successes and the reverse, with McNemar's exact two-sided p on those
    discordant seeds. Same seeds make this far tighter than two Wilson intervals side by side, and
    it tells a real change from a reshuffle of which seeds fail (docs/results, session 17)."""
    a, b = outcomes_by_seed(before), outcomes_by_seed(after)
    if a.keys() != b.keys():
        shared = len(a.keys() & b.keys())
        raise ValueError(f"the evaluations ran different seeds ({len(a)} and {len(b)}, {shared} shared)")
    gained = sum(b[s] and not a[s] for s in a)
    lost = sum(a[s] and not b[s] for s in a)
    n = gained + lost
    p = min(1.0, 2 * binom.cdf(min(gained, lost), n, 0.5)) if n else 1.0
    return {
        "seeds": len(a),
        "before": success_summary([a[s] for s in sorted(a)]),
        "after": success_summary([b[s] for s in sorted(b)]),
        "gained": gained,
        "lost": lost,
        "mcnemar_p": round(float(p), 6),
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
    return summarise(done, detector=detector is not None)


def run_evaluation(cfg: EvalConfig) -> dict:
    """Evaluate ``cfg.checkpoint`` and return (and, with ``out``, write) its summary."""
    before = None
    if cfg.compare:
        before = json.loads(Path(cfg.compare).read_text())
        if outcomes_by_seed(before).keys() != set(range(cfg.seed, cfg.seed + cfg.episodes)):
            raise ValueError(f"compare: {cfg.compare} did not run seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1}")
    policy = load_checkpoint(cfg.checkpoint)
    if cfg.place_reads is not None:
        policy = policy.reconfigured(place_reads=cfg.place_reads)
    detector = None
    if cfg.reward_model:
        detector = StepsToGoDetector(load_checkpoint(cfg.reward_model), cfg.success_threshold)
    kept: list = []
    result = evaluate(policy, detector, cfg.episodes, cfg.task_family, cfg.seed, kept, max_steps=cfg.max_steps)
    summary = {"checkpoint": cfg.checkpoint, "task": cfg.task_family, "seeds": [cfg.seed, cfg.seed + cfg.episodes - 1]}
    summary["place_reads"] = policy.config.place_reads
    summary |= result
    if before is not None:
        summary["compared_with"] = {"evaluation": cfg.compare} | paired_comparison(before, summary)
    if cfg.video:
        from .episode_video import episode_grid_gif

        summary["video"] = str(episode_grid_gif(kept[: cfg.video_episodes], cfg.video))
    if cfg.record:
        outcome = {True: "successes", False: "failures"}
        chosen = [ep for ep in kept if cfg.record_only in (None, outcome[ep.ground_truth_success])]
        Path(cfg.record).mkdir(parents=True, exist_ok=True)
        for ep in chosen:
            write_rollout(ep, cfg.record, cfg.task_family, cfg.checkpoint)
        summary["recorded"] = {"folder": cfg.record, "episodes": len(chosen)}
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
