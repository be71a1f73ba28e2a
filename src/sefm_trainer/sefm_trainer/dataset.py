"""Episodes flattened into training steps: what the model saw, the action, instruction, t, T, success."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sefm_policy.embodiment import observation_at
from sefm_policy.prompts import Observation

from .episode import Episode


@dataclass(frozen=True)
class Step:
    episode: int  # index into the episode list
    t: int
    T: int  # the frame where the goal is reached: the episode's length, unless it held past it
    observation: Observation
    action: np.ndarray
    action_tokens: np.ndarray | None
    instruction: str
    success: bool

    @property
    def steps_to_go(self) -> int:
        """The paper's target T - t; 0 on the frames a demonstration held past its goal."""
        return max(self.T - self.t, 0)


def timeline(episode: Episode) -> tuple[list, np.ndarray | None]:
    """An episode's frames in the order ``observation_at`` reads them, and its joint states.

    LanguageTable: the primary camera's frames; ALOHA: per step, a tuple of its cameras' frames."""
    cams = episode.meta.cameras
    if episode.meta.embodiment == "aloha":
        missing = [c for c in cams if c not in episode.frames]
        if missing or episode.joint_states is None:
            what = f"cameras {missing}" if missing else "joint_states"
            raise ValueError(f"{episode.path}: ALOHA episode lacks {what}")
        return list(zip(*(episode.frames[c] for c in cams), strict=True)), episode.joint_states
    primary = cams[0] if cams and cams[0] in episode.frames else next(iter(episode.frames))
    return list(episode.frames[primary]), None


class StepIndex(Sequence[Step]):
    """Random access over every step of a list of episodes."""

    def __init__(self, episodes: Sequence[Episode]) -> None:
        self.episodes = list(episodes)
        self._timelines = [timeline(ep) for ep in self.episodes]
        self._index = [(e, t) for e, ep in enumerate(self.episodes) for t in range(ep.length)]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        e, t = self._index[i]
        ep = self.episodes[e]
        frames, states = self._timelines[e]
        return Step(
            episode=e,
            t=t,
            T=ep.goal_at,
            observation=observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states),
            action=ep.actions[t],
            action_tokens=None if ep.action_tokens is None else ep.action_tokens[t],
            instruction=ep.meta.instruction,
            success=ep.meta.success,
        )
