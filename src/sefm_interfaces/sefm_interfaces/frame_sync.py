"""One observation from the several topics a robot publishes for one moment (ROS-free).

ALOHA's four cameras and its joint state arrive as separate messages with the same header
stamp; the policy and reward nodes act only once every part of a stamp is in. A newer
complete stamp makes older incomplete ones moot (a lost image must not stall the robot).

A real rig's cameras and joint states are stamped by their own drivers and never share a
stamp: with ``slop_ns`` > 0 a moment is the first camera's newest frame together with, from
each other part, the message nearest it in time if that is within the slop (what
message_filters' ApproximateTimeSynchronizer does with its ``slop``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Snapshot:
    stamp_ns: int
    frames: tuple[np.ndarray, ...]  # in camera order
    state: np.ndarray | None


class FrameSync:
    def __init__(self, cameras: Sequence[str], needs_state: bool, max_pending: int = 8, slop_ns: int = 0) -> None:
        if not cameras:
            raise ValueError("need at least one camera")
        if slop_ns < 0:
            raise ValueError(f"slop_ns must be >= 0, got {slop_ns}")
        self.cameras = tuple(cameras)
        self.needs_state = needs_state
        self.max_pending = max_pending
        self.slop_ns = int(slop_ns)
        self._parts: dict[int, dict] = {}
        self._recent: dict[str, deque] = {}
        self._done = -1

    def add_image(self, camera: str, stamp_ns: int, frame: np.ndarray) -> Snapshot | None:
        if camera not in self.cameras:
            raise ValueError(f"camera {camera!r} is not one of {self.cameras}")
        return self._add(stamp_ns, camera, frame)

    def add_state(self, stamp_ns: int, state: np.ndarray) -> Snapshot | None:
        return self._add(stamp_ns, "state", np.asarray(state, dtype=np.float64)) if self.needs_state else None

    def _add(self, stamp: int, key: str, value) -> Snapshot | None:
        if self.slop_ns:
            return self._add_near(stamp, key, value)
        if stamp <= self._done:
            return None  # a late part of a moment already acted on or given up
        parts = self._parts.setdefault(stamp, {})
        parts[key] = value
        if any(c not in parts for c in self.cameras) or (self.needs_state and "state" not in parts):
            while len(self._parts) > self.max_pending:
                del self._parts[min(self._parts)]
            return None
        self._done = stamp
        for old in [s for s in self._parts if s <= stamp]:
            del self._parts[old]
        return Snapshot(stamp, tuple(parts[c] for c in self.cameras), parts.get("state"))

    def _add_near(self, stamp: int, key: str, value) -> Snapshot | None:
        self._recent.setdefault(key, deque(maxlen=self.max_pending)).append((stamp, value))
        primary = self._recent.get(self.cameras[0])
        if not primary or primary[-1][0] <= self._done:
            return None
        at, frame = primary[-1]
        parts = {self.cameras[0]: frame}
        for part in (*self.cameras[1:], *(("state",) if self.needs_state else ())):
            near = min(self._recent.get(part, ()), key=lambda m: abs(m[0] - at), default=None)
            if near is None or abs(near[0] - at) > self.slop_ns:
                return None
            parts[part] = near[1]
        self._done = at
        return Snapshot(at, tuple(parts[c] for c in self.cameras), parts.get("state"))


def joint_positions(names: Sequence[str], positions: Sequence[float], wanted: Sequence[str]) -> np.ndarray:
    """The positions of ``wanted`` joints, in that order, from a JointState's names and positions
    (all of them, as sent, when ``wanted`` is empty): a rig's merged joint states list fingers and
    other arms' joints in whatever order their drivers chose."""
    if not wanted:
        return np.asarray(positions, dtype=np.float64)
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in wanted if j not in index or index[j] >= len(positions)]
    if missing:
        raise ValueError(f"joint state lacks {missing}")
    return np.array([positions[index[j]] for j in wanted], dtype=np.float64)
