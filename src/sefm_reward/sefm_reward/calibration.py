"""Choosing the success threshold s by measurement, on episodes whose outcome is known.

Practice ends an episode at the first frame after an action with d <= s
(``detector.detects_success``), so a threshold is judged the way practice uses it: where does
the detector first fire? In a successful episode (the goal is reached at its last frame, as in
demonstrations) firing within ``tolerance`` steps of the end is right, firing earlier ends
practice on a false success, never firing misses it; in a failed episode any firing is false.
Demonstrations held past their goal (``goals``: the frame each reached it) count a firing on any
frame after it as right too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr

from .detector import detector_ending

TOLERANCE = 2  # a firing this many steps or fewer before the goal is right; earlier it ends practice short


def fired_early(first: int, goal: int, tolerance: int = TOLERANCE) -> bool:
    """Did a detector that first fired at frame ``first`` fire too early for a goal reached at ``goal``?"""
    return first < goal - tolerance


@dataclass(frozen=True)
class ThresholdScore:
    threshold: float
    precision: float | None  # right firings / episodes where it fired (None: it never fired)
    recall: float  # right firings / successful episodes
    early: float  # successful episodes ended before their goal, as a fraction of them
    false_on_failures: float | None  # failed episodes where it fired (None: no failed episodes)


def goal_frames(episodes: Sequence[np.ndarray], goals: Sequence[int] | None) -> list[int]:
    """Each episode's goal frame: its last, unless ``goals`` says (a demonstration held past it)."""
    if goals is None:
        return [len(d) - 1 for d in episodes]
    if len(goals) != len(episodes) or any(not 0 <= g < len(d) for d, g in zip(episodes, goals, strict=False)):
        raise ValueError(f"need one goal frame within each episode, got {list(goals)} for {len(episodes)} episodes")
    return [int(g) for g in goals]


def score_threshold(
    episodes: Sequence[np.ndarray],
    successes: Sequence[bool],
    threshold: float,
    tolerance: int = TOLERANCE,
    goals: Sequence[int] | None = None,
) -> ThresholdScore:
    """``episodes``: each episode's d for its frames 0..T; ``successes``: reached its goal (at T,
    or at the frame ``goals`` gives)."""
    if len(episodes) != len(successes) or not episodes:
        raise ValueError(f"need one success flag per episode, got {len(episodes)} episodes, {len(successes)} flags")
    right = early = fired = false_fail = 0
    for d, success, goal in zip(episodes, successes, goal_frames(episodes, goals), strict=True):
        first = detector_ending(d, threshold)
        if first is None:
            continue
        fired += 1
        if not success:
            false_fail += 1
        elif not fired_early(first, goal, tolerance):
            right += 1
        else:
            early += 1
    n_success = int(np.sum(successes))
    n_fail = len(successes) - n_success
    if n_success == 0:
        raise ValueError("need at least one successful episode to score a success threshold")
    return ThresholdScore(
        threshold=float(threshold),
        precision=right / fired if fired else None,
        recall=right / n_success,
        early=early / n_success,
        false_on_failures=false_fail / n_fail if n_fail else None,
    )


@dataclass(frozen=True)
class PracticeScore:
    threshold: float
    precision: float | None  # firings on a frame where the task is done / firings (None: it never fired)
    recall: float  # episodes it ended on a done frame / episodes whose task got done
    false_on_failures: float | None  # never-done episodes it ended anyway (None: none such)


def reaches_goal(truth) -> bool:
    """Is the task done on some frame after an action (frame 0 never counts, as ``detects_success``)?"""
    return bool(np.asarray(truth, dtype=bool)[1:].any())


def score_on_practice(episodes: Sequence[np.ndarray], done: Sequence[np.ndarray], threshold: float) -> PracticeScore:
    """A threshold judged as practice meets it, on rollouts that run on past their goal: the
    detector ends an episode at its first firing, which is right when the task is done at that very
    frame (``done``: ground truth per frame 0..T). Demonstrations stop at their goal, so
    ``score_threshold`` must guess with a tolerance; a policy's own episodes need no guess, and
    they hold the failures and the frames after a goal that practice sees."""
    if len(episodes) != len(done) or not episodes:
        raise ValueError(f"need per-frame truth for every episode, got {len(episodes)} episodes, {len(done)}")
    right = fired = false_fail = reached = failed = 0
    for d, truth in zip(episodes, done, strict=True):
        truth = np.asarray(truth, dtype=bool)
        if len(truth) != len(d):
            raise ValueError(f"an episode has {len(d)} distances but {len(truth)} verdicts")
        ever = reaches_goal(truth)
        reached, failed = reached + ever, failed + (not ever)
        first = detector_ending(d, threshold)
        if first is None:
            continue
        fired += 1
        right += bool(truth[first])
        false_fail += not ever
    if reached == 0:
        raise ValueError("need at least one episode whose task gets done to score a success threshold")
    return PracticeScore(
        threshold=float(threshold),
        precision=right / fired if fired else None,
        recall=right / reached,
        false_on_failures=false_fail / failed if failed else None,
    )


def sweep_on_practice(
    episodes: Sequence[np.ndarray], done: Sequence[np.ndarray], thresholds: Sequence[float], min_precision: float = 0.9
) -> dict:
    """``sweep``'s recommendation, with ``score_on_practice`` judging each threshold."""
    scores = [score_on_practice(episodes, done, s) for s in sorted(thresholds)]
    best = recommended(scores, min_precision)
    return {
        "episodes": len(episodes),
        "task_done": sum(reaches_goal(t) for t in done),
        "min_precision": min_precision,
        "recommended_threshold": None if best is None else best.threshold,
        "scores": [asdict(s) for s in scores],
    }


def spearman_on_successes(
    episodes: Sequence[np.ndarray], successes: Sequence[bool], goals: Sequence[int] | None = None
) -> float | None:
    """Rank correlation of d with the true steps-to-go (T - t, 0 past a held goal), pooled over every
    frame of the successful episodes: whether d orders frames by how far they are from their goal,
    on one scale across episodes as a threshold needs (None if undefined)."""
    kept = [(d, g) for d, ok, g in zip(episodes, successes, goal_frames(episodes, goals), strict=True) if ok]
    if not kept:
        return None
    truth = [np.maximum(g - np.arange(len(d)), 0) for d, g in kept]
    rho = spearmanr(np.concatenate([d for d, _ in kept]), np.concatenate(truth)).statistic
    return float(rho) if np.isfinite(rho) else None


def recommended(scores: Sequence[ThresholdScore | PracticeScore], min_precision: float):
    """The highest-recall threshold (the lowest among ties) whose precision reaches ``min_precision``."""
    good = [s for s in scores if s.precision is not None and s.precision >= min_precision and s.recall > 0]
    return max(good, key=lambda s: (s.recall, -s.threshold), default=None)


def sweep(
    episodes: Sequence[np.ndarray],
    successes: Sequence[bool],
    thresholds: Sequence[float],
    tolerance: int = TOLERANCE,
    min_precision: float = 0.9,
    goals: Sequence[int] | None = None,
) -> dict:
    """Score every threshold; recommend the one with the highest recall among those whose
    precision reaches ``min_precision`` (None when none does: then d does not tell success apart)."""
    scores = [score_threshold(episodes, successes, s, tolerance, goals) for s in sorted(thresholds)]
    best = recommended(scores, min_precision)
    at = goal_frames(episodes, goals)
    final = np.array([d[g] for d, ok, g in zip(episodes, successes, at, strict=True) if ok])
    before = np.concatenate([d[: max(g - tolerance, 0)] for d, g in zip(episodes, at, strict=True)])
    past = np.concatenate([d[g + 1 :] for d, ok, g in zip(episodes, successes, at, strict=True) if ok])
    return {
        "episodes": len(episodes),
        "successful": int(np.sum(successes)),
        "tolerance": tolerance,
        "min_precision": min_precision,
        "recommended_threshold": None if best is None else best.threshold,
        "spearman_on_successes": spearman_on_successes(episodes, successes, goals),
        "d_at_goal_median": float(np.median(final)),
        "d_past_goal_median": float(np.median(past)) if past.size else None,
        "d_before_goal_p5": float(np.percentile(before, 5)) if before.size else None,
        "scores": [asdict(s) for s in scores],
    }


def plot_sweep(result: dict, path) -> None:
    """Precision, recall and early firings against s: the PNG to choose s from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = result["scores"]
    s = [x["threshold"] for x in scores]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(s, [np.nan if x["precision"] is None else x["precision"] for x in scores], "o-", label="precision")
    ax.plot(s, [x["recall"] for x in scores], "s-", label="recall")
    ax.plot(s, [x["early"] for x in scores], "^-", label="early firing (successful eps)")
    if result["recommended_threshold"] is not None:
        ax.axvline(result["recommended_threshold"], color="grey", ls="--", label="recommended s")
    ax.axhline(result["min_precision"], color="grey", lw=0.5)
    ax.set_xlabel("success threshold s (steps to go)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"detector on {result['episodes']} episodes ({result['successful']} successful)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
