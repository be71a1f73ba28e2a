"""One episode = one rosbag2 directory: the topics of docs/design.md under the robot's namespace,
plus the episode's metadata (bag ``custom_data`` key ``sefm.episode``, and the ``end`` event
on ``episode/events``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

METADATA_KEY = "sefm.episode"
FORMAT = "sefm-episode/1"

TERMINATIONS = ("success", "max_steps", "abort", "error")


@dataclass
class EpisodeMeta:
    instruction: str
    embodiment: str
    length: int  # number of actions; the bag holds length + 1 frames per camera
    success: bool | None  # ground truth where known (the sim's verdict on the final frame), else None
    termination: str
    seed: int | None = None
    policy_version: int | str | None = None
    task_family: str | None = None
    namespace: str = "/robot_0"
    cameras: list[str] = field(default_factory=lambda: ["front"])
    control_hz: float = 10.0
    format: str = FORMAT
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.termination not in TERMINATIONS:
            raise ValueError(f"termination must be one of {TERMINATIONS}, got {self.termination!r}")
        if self.length < 0:
            raise ValueError(f"length must be >= 0, got {self.length}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EpisodeMeta:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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
