"""Episodes flattened into training steps: frame, previous frame, action, instruction, t, T, success."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .episode import Episode


@dataclass(frozen=True)
class Step:
    episode: int  # index into the episode list
    t: int
    T: int  # episode length (number of actions); steps-to-go target is T - t
    frame: np.ndarray  # primary camera at t
    prev_frame: np.ndarray  # primary camera at t - 1 (the first frame again at t = 0)
    action: np.ndarray
    action_tokens: np.ndarray | None
    instruction: str
    success: bool


class StepIndex(Sequence[Step]):
    """Random access over every step of a list of episodes."""

    def __init__(self, episodes: Sequence[Episode]) -> None:
        self.episodes = list(episodes)
        self._index = [(e, t) for e, ep in enumerate(self.episodes) for t in range(ep.length)]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        e, t = self._index[i]
        ep = self.episodes[e]
        frames = ep.frames[ep.meta.cameras[0]] if ep.meta.cameras[0] in ep.frames else next(iter(ep.frames.values()))
        return Step(
            episode=e,
            t=t,
            T=ep.length,
            frame=frames[t],
            prev_frame=frames[max(t - 1, 0)],
            action=ep.actions[t],
            action_tokens=None if ep.action_tokens is None else ep.action_tokens[t],
            instruction=ep.meta.instruction,
            success=ep.meta.success,
        )
