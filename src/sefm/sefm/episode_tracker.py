"""Episode bookkeeping of the episode manager, free of ROS so it is easy to test and reuse."""

from __future__ import annotations

from dataclasses import dataclass, field

from sefm_reward.detector import detects_success


@dataclass
class EpisodeTracker:
    """Counts steps as the policy's actions (its action-token messages; the safety layer's stop
    commands are not actions) and decides when an episode ends: detected success, max length
    or an operator's word."""

    max_steps: int
    stall_timeout_s: float = 0.0  # 0: never
    running: bool = False
    episode_id: int = 0
    steps: int = 0
    info: dict = field(default_factory=dict)
    last_progress: float = 0.0  # when the episode started or last took a step (monotonic seconds)
    start_ns: int = 0  # ROS time at the start: frames stamped before are the last episode's (clocks synced, e.g. NTP)
    first_frame_ns: int | None = None  # the stamp of the first frame judged in this episode

    def start(self, info: dict, now: float = 0.0, start_ns: int = 0) -> int:
        self.running, self.steps, self.info, self.last_progress = True, 0, dict(info), now
        self.start_ns, self.first_frame_ns = start_ns, None
        self.episode_id += 1
        return self.episode_id

    def on_action(self, now: float = 0.0) -> str | None:
        if not self.running:
            return None
        self.steps += 1
        self.last_progress = now
        return "max_steps" if self.steps >= self.max_steps else None

    def stalled(self, now: float) -> bool:
        """No step for ``stall_timeout_s``: a robot whose sim or driver died takes none, and its
        episode must end so that practice goes on once it is back."""
        return self.running and self.stall_timeout_s > 0 and now - self.last_progress > self.stall_timeout_s

    def on_detected_success(self, verdict: bool, frame_ns: int) -> str | None:
        """``verdict``: the reward node's d <= s on the frame stamped ``frame_ns``. A frame from
        before the start is the last episode's; the first frame judged is this one's frame 0 (or,
        if the reward node skipped frame 0, the next: one frame late, never early)."""
        if not self.running or frame_ns <= self.start_ns:
            return None
        if self.first_frame_ns is None:
            self.first_frame_ns = frame_ns
        step = self.steps if frame_ns > self.first_frame_ns else 0
        return "success" if detects_success(step, verdict) else None

    def finish(self, termination: str, detected_success: bool) -> dict:
        """Close the episode; the metadata of the ``end`` event. ``success`` is left unknown: only
        the sim's verdict on the final frame may fill it, and that is the bag reader's to match
        (the verdict often lands after this event); the detector's word is ``detected_success``."""
        self.running = False
        return {
            **self.info,
            "length": self.steps,
            "success": None,
            "termination": termination,
            "extra": {"episode_id": self.episode_id, "detected_success": bool(detected_success)},
        }
