"""Stage 2 practice on a ROS fleet: the episodes are the recorder's bags.

Each loop publishes the policy as a new checkpoint version, waits until every robot's policy
node acts with it, resumes the robots, reads each bag the recorder lands for that version,
and pauses the robots once the buffer has its N×B steps (the learner updates while they
wait, so every episode is on-policy). The episodes a pause cuts short are on-policy too and
join the buffer, and so does every other bag of that version that lands: nothing practised is
thrown away. The control surface (publish, wait, pause) is a protocol so that this
module stays ROS-free; ``trainer_node.TrainerNode`` implements it with rclpy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.model import EFM
from sefm_reward.detector import StepsToGoDetector, detector_ending

from .bag_reader import NotAnEpisode, peek_episode, read_episode
from .dataset import timeline
from .episode import Episode
from .rollout import PracticeEpisode


class FleetControl(Protocol):
    def publish_checkpoint(self, path: Path, version: int) -> None:
        """Announce a checkpoint on /sefm/policy_checkpoint."""

    def wait_for_version(self, version: int, timeout_s: float) -> None:
        """Return once every robot's policy acts with ``version``; TimeoutError naming the laggards."""

    def set_paused(self, paused: bool, timeout_s: float) -> int:
        """Pause or resume every robot; returns how many running episodes the pause aborted."""


def practice_episode(episode: Episode, detector: StepsToGoDetector) -> PracticeEpisode:
    """A recorded episode as the learner sees it, each frame labelled with the frozen d(o, g)."""
    if episode.action_tokens is None:
        raise NotAnEpisode(episode.path, "no policy/action_tokens: not a practice episode")
    frames, states = timeline(episode)
    practice = PracticeEpisode(
        seed=episode.meta.seed if episode.meta.seed is not None else -1,
        instruction=episode.meta.instruction,
        frames=frames,
        states=None if states is None else list(states),
        embodiment=episode.meta.embodiment,
        tokens=list(episode.action_tokens),
        detected_success=episode.meta.termination == "success",
        ground_truth_success=bool(episode.meta.success),
        termination=episode.meta.termination,
    )
    observations = [practice.observation(t) for t in range(len(frames))]
    practice.distances = [float(d) for d in detector.episode_distances(observations)]
    practice.detector_fired_at = detector_ending(practice.distances, detector.threshold)
    return practice


class FleetSource:
    """An :class:`~sefm_trainer.stage2.EpisodeSource` over the robots of a ROS graph."""

    def __init__(
        self,
        episodes_dir: str | Path,
        control: FleetControl,
        checkpoints_dir: str | Path,
        poll_s: float = 0.2,
        timeout_s: float = 600.0,
        keep_checkpoints: int = 2,
        health: Callable[[], None] | None = None,
        settle_s: float = 1.0,
    ) -> None:
        """``health``: called while waiting; raises if the robots can no longer deliver (e.g. a node died)."""
        self.episodes_dir, self.checkpoints_dir = Path(episodes_dir), Path(checkpoints_dir)
        self.control, self.poll_s, self.timeout_s, self.keep = control, poll_s, timeout_s, keep_checkpoints
        self.episodes_dir.mkdir(parents=True, exist_ok=True)
        self.seen = {p.name for p in self.episodes_dir.iterdir()}  # earlier runs' bags are not this run's practice
        self.stale = 0  # bags of another policy version (not used)
        self.health = health or (lambda: None)
        self.settle_s = settle_s  # longer than the recorders' end_grace_s

    def state(self) -> dict:
        return {}  # a loop's episodes are the bags of its policy version, whatever came before

    def restore(self, state: dict) -> None:
        pass

    def collect(self, policy: EFM, detector: StepsToGoDetector, min_steps: int, loop: int) -> list[PracticeEpisode]:
        path = save_checkpoint(policy, self.checkpoints_dir / f"actor_{loop:05d}", {"version": loop})
        self._prune()
        self.control.publish_checkpoint(path, loop)
        self.control.wait_for_version(loop, self.timeout_s)
        self.control.set_paused(False, self.timeout_s)
        landed, steps = [], 0
        deadline = time.monotonic() + self.timeout_s
        while steps < min_steps:
            fresh = self._landed(loop)
            landed += fresh
            steps += sum(length for _, length in fresh)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fleet delivered {len(landed)} episodes of version {loop} in {self.timeout_s}s")
            self.health()
            time.sleep(self.poll_s)
        cut_short = self.control.set_paused(True, self.timeout_s)
        # Wait for the episodes the pause cut short, then for any bag still in its recorder's grace window.
        before, deadline = len(landed), time.monotonic() + self.timeout_s
        while len(landed) - before < cut_short and time.monotonic() < deadline:
            time.sleep(self.poll_s)
            landed += self._landed(loop)
        time.sleep(self.settle_s)
        landed += self._landed(loop)
        # Label while the robots wait: reading and scoring bags would otherwise compete with them for the CPU.
        episodes = []
        for path, length in landed:
            try:
                if length:
                    episodes.append(practice_episode(read_episode(path), detector))
            except NotAnEpisode as err:
                print(f"stage 2: skipping {err}")
        return episodes

    def _landed(self, version: int) -> list[tuple[Path, int]]:
        """Bags of ``version`` the recorder has renamed into place since the last look, with their
        lengths (hidden ones are still being written)."""
        fresh = []
        for path in sorted(self.episodes_dir.iterdir()):
            if path.name in self.seen or path.name.startswith("."):
                continue
            self.seen.add(path.name)
            try:
                meta = peek_episode(path)
            except NotAnEpisode as err:
                print(f"stage 2: skipping {err}")
                continue
            if meta.policy_version == version:
                fresh.append((path, meta.length))
            else:
                self.stale += 1
        return fresh

    def _prune(self) -> None:
        actors = sorted(self.checkpoints_dir.glob("actor_*"))
        for old in actors[: max(0, len(actors) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)
