"""The safety layer between the model and the controller (docs/design.md).

Every command passes through it: actuation must be enabled in config, the e-stop wins over
everything, NaN is never forwarded, values are clamped to the configured limits and the
change from the previous command is bounded, and a stale observation stops the robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SafetyLimits:
    low: np.ndarray  # per-dimension command limits
    high: np.ndarray
    max_change: np.ndarray  # per-dimension bound on |command_t - command_{t-1}|
    stale_after_s: float = 0.5  # no fresh frame for this long -> stop
    actuation_enabled: bool = False  # real rigs start disarmed


@dataclass
class SafetyLayer:
    limits: SafetyLimits
    hold: np.ndarray | None = None  # the "stop" command: zeros for velocity-like commands
    estopped: bool = False
    events: dict[str, int] = field(default_factory=lambda: {"clamped": 0, "rate_limited": 0, "nan": 0, "stale": 0})

    def __post_init__(self) -> None:
        self._low = np.asarray(self.limits.low, dtype=np.float64)
        self._high = np.asarray(self.limits.high, dtype=np.float64)
        self._max_change = np.asarray(self.limits.max_change, dtype=np.float64)
        if self.hold is None:
            self.hold = np.zeros_like(self._low)
        self._last = np.asarray(self.hold, dtype=np.float64).copy()

    def stop_command(self) -> np.ndarray:
        self._last = np.asarray(self.hold, dtype=np.float64).copy()
        return self._last.copy()

    def set_estop(self, engaged: bool) -> None:
        self.estopped = bool(engaged)

    def is_stale(self, frame_age_s: float) -> bool:
        return frame_age_s > self.limits.stale_after_s

    def filter(self, command, frame_age_s: float = 0.0) -> tuple[np.ndarray, str | None]:
        """The command to send and why it was replaced by a stop, if it was."""
        if self.estopped:
            return self.stop_command(), "estop"
        if not self.limits.actuation_enabled:
            return self.stop_command(), "actuation disabled"
        if self.is_stale(frame_age_s):
            self.events["stale"] += 1
            return self.stop_command(), f"stale observation ({frame_age_s:.2f} s old)"
        c = np.asarray(command, dtype=np.float64).reshape(self._low.shape)
        if not np.isfinite(c).all():
            self.events["nan"] += 1
            return self.stop_command(), "non-finite command"
        clamped = np.clip(c, self._low, self._high)
        self.events["clamped"] += int(np.any(clamped != c))
        limited = np.clip(clamped, self._last - self._max_change, self._last + self._max_change)
        self.events["rate_limited"] += int(np.any(limited != clamped))
        self._last = limited
        return limited.copy(), None
