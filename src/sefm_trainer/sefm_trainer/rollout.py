"""Episodes of a policy in simulation, many envs at once in one process (batched inference).

The same rollout serves Stage 2 practice (episodes end when the learned detector fires) and
evaluation (greedy policy, ground truth decides, the detector is scored against it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from sefm_policy.embodiment import observation_at
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_reward.detector import StepsToGoDetector, detects_success
from sefm_sim_bridge.envs import embodiment_of, make_env, model_view


@dataclass
class PracticeEpisode:
    seed: int
    instruction: str
    frames: list  # T+1 frames (LanguageTable: an image each; ALOHA: a tuple of its cameras' images)
    states: list[np.ndarray] | None = None  # T+1 joint states (ALOHA)
    embodiment: str = "language_table"
    tokens: list[np.ndarray] = field(default_factory=list)  # T action token vectors
    actions: list[np.ndarray] = field(default_factory=list)  # the T commands those tokens decode to
    distances: list[float] = field(default_factory=list)  # d(o_t, g) for the T+1 frames
    done: list[bool] = field(default_factory=list)  # the simulator's success verdict on each of the T+1 frames
    goal_at: int | None = None  # the first frame after an action that the simulator calls done
    detected_success: bool = False
    ground_truth_success: bool = False
    detector_fired_at: int | None = None  # first t with d <= s
    termination: str = "max_steps"
    greedy_steps: int = 0  # the first steps were acted greedily: states to practise from, not choices to weigh
    baseline: bool = False  # a greedy run of a practised seed: what that seed's practice is weighed against
    window: deque | None = field(default=None, repr=False)  # the detector's record of this episode's places

    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def practised(self) -> range:
        """The steps whose actions were sampled, which REINFORCE may weigh (none of a baseline's)."""
        return range(self.length if self.baseline else min(self.greedy_steps, self.length), self.length)

    def observation(self, t: int) -> Observation:
        return observation_at(self.embodiment, self.frames, t, self.instruction, self.states)


def run_episodes(
    policy: EFM,
    detector: StepsToGoDetector | None,
    seeds: Sequence[int],
    *,
    task_family: str = "block2block",
    max_steps: int = 100,
    temperature: float = 1.0,
    chain_temperature: float = 0.0,
    greedy: bool = False,
    end_on: str = "detector",
    envs: int = 8,
    generator: torch.Generator | None = None,
    image_size: tuple[int, int] = (96, 96),
    progress: str | None = None,
    greedy_lead: int = 0,
    after_goal: int = 0,
) -> list[PracticeEpisode]:
    """One episode per seed, ``envs`` at a time. ``end_on``: "detector" (practice) or
    "ground_truth" (evaluation); the other verdict is recorded alongside. ``progress``: label of a
    progress bar over episodes (none if not given). Without a ``detector`` (evaluation of a policy
    alone) no d is computed and nothing fires. ``greedy_lead``: each episode first acts greedily for
    a number of steps drawn from its seed, uniform in 0..greedy_lead, then samples. ``after_goal``
    (with "ground_truth"): act on for this many steps after the task is first done, so a detector
    can be judged on the frames after a goal that practice sees."""
    if greedy_lead < 0:
        raise ValueError(f"greedy_lead must be >= 0, got {greedy_lead}")
    if after_goal < 0 or (after_goal and end_on != "ground_truth"):
        raise ValueError(f"after_goal must be >= 0 and needs end_on 'ground_truth', got {after_goal} with {end_on!r}")
    if end_on not in ("detector", "ground_truth"):
        raise ValueError(f"end_on must be 'detector' or 'ground_truth', got {end_on!r}")
    if detector is None and end_on == "detector":
        raise ValueError("practice that ends on the detector needs a detector")
    embodiment = embodiment_of(task_family)
    pool = [make_env(task_family, image_size=image_size, max_steps=max_steps) for _ in range(envs)]
    free, todo, done, live = list(pool), list(seeds), [], []
    bar = tqdm(total=len(todo), desc=progress, unit="ep", disable=progress is None)
    try:
        while todo or live:
            while todo and free:
                env, seed = free.pop(), todo.pop(0)
                obs, _ = env.reset(seed=seed)
                frame, state = model_view(obs)
                states = None if state is None else [state]
                ep = PracticeEpisode(seed, obs["instruction"], [frame], states, embodiment)
                ep.greedy_steps = greedy_lead and int(np.random.default_rng(seed).integers(0, greedy_lead + 1))
                ep.window = None if detector is None else detector.window()
                live.append((env, ep))
            # Score the newest frame of every live episode, decide who ends, act for the rest.
            if detector is None:
                d = [None] * len(live)
            else:
                newest = [ep.observation(len(ep.frames) - 1) for _, ep in live]
                d = detector.distances(newest, [ep.window for _, ep in live])
            acting = []
            for (env, ep), dist in zip(live, d, strict=True):
                if dist is not None:
                    ep.distances.append(float(dist))
                    if ep.detector_fired_at is None and detects_success(ep.length, dist <= detector.threshold):
                        ep.detector_fired_at = ep.length
                ep.ground_truth_success = env.success()
                ep.done.append(ep.ground_truth_success)
                if ep.goal_at is None and ep.ground_truth_success and ep.length > 0:
                    ep.goal_at = ep.length
                if end_on == "detector":
                    ends_by = ep.detector_fired_at is not None
                else:
                    ends_by = ep.goal_at is not None and ep.length >= ep.goal_at + after_goal
                if (ends_by and ep.length > 0) or ep.length >= max_steps:
                    ep.detected_success = ep.detector_fired_at is not None
                    ep.termination = "success" if ends_by and ep.length > 0 else "max_steps"
                    done.append(ep)
                    free.append(env)
                    bar.update(1)
                else:
                    acting.append((env, ep))
            leading = [(env, ep) for env, ep in acting if ep.length < ep.greedy_steps]
            sampling = [(env, ep) for env, ep in acting if ep.length >= ep.greedy_steps]
            for group, leads in ((leading, True), (sampling, False)):
                if not group:
                    continue
                sample = policy.sample_actions(
                    [ep.observation(len(ep.frames) - 1) for _, ep in group],
                    temperature=temperature,
                    chain_temperature=chain_temperature,
                    greedy=greedy or leads,
                    generator=generator,
                )
                for (env, ep), tokens, action in zip(group, sample.tokens, sample.actions, strict=True):
                    obs, *_ = env.step(action)
                    frame, state = model_view(obs)
                    ep.tokens.append(tokens)
                    ep.actions.append(action)
                    ep.frames.append(frame)
                    if ep.states is not None:
                        ep.states.append(state)
            live = acting
    finally:
        bar.close()
        for env in pool:
            env.close()
    order = {s: i for i, s in enumerate(seeds)}
    return sorted(done, key=lambda ep: order[ep.seed])
