"""One observation from the several topics a robot publishes for one moment (ROS-free).

ALOHA's four cameras and its joint state arrive as separate messages with the same header
stamp; the policy and reward nodes act only once every part of a stamp is in. A newer
complete stamp makes older incomplete ones moot (a lost image must not stall the robot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Snapshot:
    stamp_ns: int
    frames: tuple[np.ndarray, ...]  # in camera order
    state: np.ndarray | None


class FrameSync:
    def __init__(self, cameras: Sequence[str], needs_state: bool, max_pending: int = 8) -> None:
        if not cameras:
            raise ValueError("need at least one camera")
        self.cameras = tuple(cameras)
        self.needs_state = needs_state
        self.max_pending = max_pending
        self._parts: dict[int, dict] = {}
        self._done = -1

    def add_image(self, camera: str, stamp_ns: int, frame: np.ndarray) -> Snapshot | None:
        if camera not in self.cameras:
            raise ValueError(f"camera {camera!r} is not one of {self.cameras}")
        return self._add(stamp_ns, camera, frame)

    def add_state(self, stamp_ns: int, state: np.ndarray) -> Snapshot | None:
        return self._add(stamp_ns, "state", np.asarray(state, dtype=np.float64)) if self.needs_state else None

    def _add(self, stamp: int, key: str, value) -> Snapshot | None:
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
