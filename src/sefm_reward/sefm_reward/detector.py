"""Reward and success read off a frozen EFM's steps-to-go prediction (paper §3).

d(o, g) = sum_k p(k | o, g) * centre(k); the reward of a step is the drop in d,
r_t = d(o_t, g) - d(o_{t+1}, g); success is declared when d <= s.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from sefm_policy.model import EFM
from sefm_policy.prompts import Observation

DISTANCE_BATCH = 64
DEFAULT_THRESHOLD = 3.0  # s before it is measured (``sefm reward calibrate``): 3 steps to go


def detects_success(step: int, verdict: bool) -> bool:
    """Practice's one success rule: the verdict d(o_t, g) <= s ends an episode on frame t >= 1.
    Frame 0 never does: nothing has been done yet, and on the fleet a verdict then may be on the
    last episode's frame. Rollout, fleet source, episode manager and threshold calibration all
    decide by it."""
    return step >= 1 and verdict


def checked_threshold(success_threshold: float) -> float:
    if success_threshold < 0:
        raise ValueError(f"success_threshold must be >= 0, got {success_threshold}")
    return float(success_threshold)


def detector_ending(distances, threshold: float) -> int | None:
    """The frame at which the detector ends an episode whose frames 0..T read ``distances``."""
    return next((t for t, d in enumerate(distances) if detects_success(t, float(d) <= threshold)), None)


@dataclass
class Reading:
    steps_to_go: float
    reward: float | None  # None on the first frame of an episode
    success: bool


class StepsToGoDetector:
    """The frozen reward model and the success threshold s: d for any frames, in batches.

    A reward model whose d reads the chain's places (``steps_from: places``) with ``place_frames``
    w > 1 tells each frame's d the median of the places said on it and on the w - 1 frames of its
    episode read before it: one frame's misread place is outvoted instead of firing the detector
    (docs/results, session 24). The frames read before are an episode's ``window``."""

    def __init__(self, model: EFM, success_threshold: float) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.threshold = checked_threshold(success_threshold)
        self.place_frames = model.config.place_frames

    def window(self) -> deque:
        """A new episode's record of the places read on its frames (one per episode, in frame order)."""
        return deque(maxlen=self.place_frames)

    @torch.no_grad()
    def distances(self, observations: list[Observation], windows: list[deque] | None = None) -> np.ndarray:
        """d of each observation, in batches of DISTANCE_BATCH. ``windows``: each observation's episode
        window, needed when places are pooled; several entries may share one episode's window, in
        frame order (``episode_distances``)."""
        pooled = self.place_frames > 1
        if pooled and (windows is None or len(windows) != len(observations)):
            raise ValueError(
                f"this reward model pools places over {self.place_frames} frames (place_frames): "
                "give each observation its episode's window"
            )
        out = []
        for i in range(0, max(len(observations), 1), DISTANCE_BATCH):
            batch = observations[i : i + DISTANCE_BATCH]
            if pooled:
                told = self._pooled(self.model.said_places(batch), windows[i : i + DISTANCE_BATCH])
                d = self.model.steps_to_go_log_probs(batch, told).exp() @ self.model.steps_centres
            else:
                d = self.model.expected_steps_to_go(batch)
            out.append(d.cpu().numpy())
        return np.concatenate(out)

    def episode_distances(self, observations: list[Observation]) -> np.ndarray:
        """d of one episode's frames 0..T, in order: what practice read live, frame by frame."""
        window = self.window()
        return self.distances(observations, [window] * len(observations))

    def _pooled(self, said: np.ndarray, windows: list[deque]) -> np.ndarray:
        """Each frame's said places added to its window; the chain tokens of each window's median."""
        tokenizer = self.model.embodiment.action
        medians = []
        for tokens, window in zip(said, windows, strict=True):
            window.append(tokenizer.decode_places(tokens))
            medians.append(np.median(np.stack(window), axis=0))
        return tokenizer.encode_places(np.stack(medians))


class Readings:
    """One robot's running episode as its reward node reads it: each new d, the reward against the
    frame read before it (frames may be skipped) and the verdict. ``reset`` between episodes."""

    def __init__(self, success_threshold: float) -> None:
        self.threshold = checked_threshold(success_threshold)
        self._last_d: float | None = None

    def reset(self) -> None:
        self._last_d = None

    def read(self, d: float) -> Reading:
        reward = None if self._last_d is None else self._last_d - float(d)
        self._last_d = float(d)
        return Reading(float(d), reward, bool(d <= self.threshold))


def label_episode(distances, gamma: float = 0.9, success_bonus: float = 0.0, success=None) -> tuple:
    """Rewards r_t = d_t - d_{t+1} and Monte Carlo returns R_t = sum_i gamma^(i-t) r_i for an
    episode's T+1 distances (frames 0..T), plus an optional bonus on the step that succeeded."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError("need the distances of at least two frames")
    rewards = d[:-1] - d[1:]
    if success_bonus and success is not None and success:
        rewards[-1] += success_bonus
    returns = np.zeros_like(rewards)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        returns[t] = acc
    return rewards, returns
