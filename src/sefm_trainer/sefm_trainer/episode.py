"""One episode = one rosbag2 directory: the topics of docs/design.md under the robot's namespace,
plus the episode's metadata (bag ``custom_data`` key ``sefm.episode``, and the ``end`` event
on ``episode/events``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sefm_interfaces.episode_protocol import EpisodeMeta

METADATA_KEY = "sefm.episode"


@dataclass
class Episode:
    """An episode as arrays, aligned by step: ``frames[cam][t]`` is what the robot saw before
    ``actions[t]``; the last frame follows the last action."""

    path: Path
    meta: EpisodeMeta
    frames: dict[str, np.ndarray]  # camera -> (T+1, H, W, 3) uint8
    stamps_ns: np.ndarray  # (T+1,) header stamps of the frames
    actions: np.ndarray  # (T, 2) planar deltas in metres (LanguageTable) or (T, chunk, 14) joint targets (ALOHA)
    action_tokens: np.ndarray | None = None  # (T, slots) if recorded
    effector: np.ndarray | None = None  # (T+1, 2) effector positions if recorded
    joint_states: np.ndarray | None = None  # (T+1, joints) if recorded
    objects: dict[str, np.ndarray] | None = None  # name -> (T+1, 2) board places, if recorded (datagen)

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    @property
    def goal_at(self) -> int:
        """The frame where the goal is first reached: the last one, unless the demonstrator went
        on past its goal (``DatagenConfig.hold_steps``) to show what a done board looks like."""
        return int(self.meta.extra.get("goal_at", self.length))

    @property
    def last_done(self) -> int:
        """The last frame of the goal reached and still held (``goal_at`` when nothing was held)."""
        return self.goal_at + int(self.meta.extra.get("held", 0))
