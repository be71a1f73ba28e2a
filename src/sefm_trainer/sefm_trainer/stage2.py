"""Stage 2: self-improvement with on-policy REINFORCE (paper Algorithm 1, App. A.3, C).

Each loop: robots practise until N×B steps are collected (episodes end on the frozen
detector's success, d <= s, or max length); every step is labelled with r_t = d_t - d_{t+1}
and the Monte Carlo return R_t (gamma 0.9); N updates on minibatches of B drawn without
replacement, loss -c·R·log p(a|o,g); the buffer is cleared; the new checkpoint is published.
The vision tower stays frozen. Where the episodes come from is a source's business (the
in-process gym rollout here; the ROS fleet through episode bags), so the algorithm is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from pydantic import Field, model_validator

from sefm_interfaces.typed_config import StrictModel
from sefm_policy.losses import reinforce_loss
from sefm_policy.model import EFM
from sefm_reward.detector import DEFAULT_THRESHOLD, StepsToGoDetector, label_episode
from sefm_sim_bridge.envs import TASK_FAMILIES

from .consensus import consensus_loss, episode_consensus, labelled_slots
from .cotrain import Demonstrations
from .rollout import PracticeEpisode, run_episodes
from .stage2_run import Stage2Run
from .trainer_state import decode_rng, encode_rng


class Stage2Config(StrictModel):
    policy: str = Field(..., description="Stage 1 checkpoint to improve (best_bc)")
    reward_model: str = Field(..., description="frozen Stage 1 checkpoint for d(o,g) (best_steps)")
    out: str
    loops: int = Field(30, gt=0)
    updates: int = Field(16, gt=0, description="N: updates per loop")
    minibatch: int = Field(64, gt=0, description="B: steps per update")
    reward: Literal["progress", "success"] = Field(
        "progress",
        description="progress: R from r_t = d_t - d_t+1 (the paper); success: R = 1 on every step of a detected "
        "success, else 0 (imitating its own successes)",
    )
    gamma: float = Field(0.9, ge=0, le=1)
    coef: float = Field(5e-2, gt=0, description="c in -c·R·log p")
    kl_coef: float = Field(
        0.0, ge=0, description="beta of beta·KL(policy || the Stage 1 policy) over every slot of a practised step"
    )
    baseline: Literal["none", "greedy"] = Field(
        "none",
        description="greedy (with reward: success): every practised seed is also run greedily, and R = its practice "
        "episode's success minus the greedy run's, so practice is weighed by what it does better or worse than the "
        "policy greedy evaluation acts as (self-critical; in-process practice only; the greedy runs count as extra "
        "episodes)",
    )
    normalize_returns: bool = Field(
        False, description="R -> (R - mean) / std over the loop's buffer: a baseline, so no step is pushed for nothing"
    )
    demonstrations: str | None = Field(None, description="episode folder (Stage 1's data) that demo_coef co-trains on")
    demo_coef: float = Field(
        0.0, ge=0, description="weight of a behaviour-cloning loss on demo_batch demonstration steps in every update"
    )
    demo_batch: int = Field(64, gt=0, description="demonstration steps per update when demo_coef > 0")
    consensus_coef: float = Field(
        0.0,
        ge=0,
        description="weight of a loss that labels each practised step's target place with the median of the "
        "target places said over its episode (a chain-of-places policy)",
    )
    consensus_from: Literal["policy", "reward_model"] = Field(
        "policy",
        description="who says the places consensus_coef takes the median of: the policy (self-training) or the "
        "frozen reward model (a teacher trained apart; it must have a chain of places)",
    )
    clip: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="epsilon of PPO's clipped ratio to the policy that practised (0: the paper's plain REINFORCE): a "
        "loop's later updates stop pushing a step once earlier ones moved its probability past 1 +- clip",
    )
    lr: float = Field(
        3e-5,
        gt=0,
        description="AdamW's; ours (the paper gives none): at 1e-4 a perfect reward's loop made the 8-block policy "
        "worse, at 3e-5 it held it (docs/results, session 21)",
    )
    temperature: float = Field(1.0, gt=0)
    chain_temperature: float = Field(
        0.0,
        ge=0,
        description="a reasoning chain's places: 0 greedy; > 0 the digits the policy's practice_digits names "
        "(EFMConfig: coarse, or fine within the patches acting reads) sampled and reinforced",
    )
    greedy_steps: int = Field(
        0,
        ge=0,
        description="practice first acts greedily for a number of steps uniform in 0..greedy_steps (drawn from the "
        "episode's seed), then samples; only sampled steps are weighed: practice starts where greedy evaluation's "
        "episodes go, e.g. its cycles (in-process practice only)",
    )
    success_threshold: float = Field(DEFAULT_THRESHOLD, ge=0, description="s: detected success when d <= s")
    success_bonus: float = Field(0.0, ge=0, description="added to the reward of a detected success (ALOHA)")
    max_steps: int = Field(100, gt=0)
    task_family: Literal[TASK_FAMILIES] = "block2block"
    envs: int = Field(8, gt=0, description="in-process rollout: simulated robots practising at once")
    window: int = Field(3, gt=0, description="loops in the moving window of detected success")
    patience: int = Field(10, ge=0, description="stop after this many loops without a better window (0: never)")
    seed: int = 0

    @model_validator(mode="after")
    def _check_demonstrations(self) -> Stage2Config:
        if self.demo_coef > 0 and self.demonstrations is None:
            raise ValueError("demo_coef > 0 co-trains on demonstrations, and demonstrations is not set")
        if self.baseline == "greedy" and self.reward != "success":
            raise ValueError("baseline: greedy weighs an episode's success against a greedy run's: set reward: success")
        return self


@dataclass
class BufferedStep:
    """One practised step in the buffer, labelled with its Monte Carlo return."""

    episode: PracticeEpisode
    t: int
    ret: float


class EpisodeSource(Protocol):
    def collect(self, policy: EFM, detector: StepsToGoDetector, min_steps: int, loop: int) -> list[PracticeEpisode]:
        """Whole practice episodes totalling at least ``min_steps`` steps."""

    def state(self) -> dict:
        """What a resumed run needs to go on drawing the same episodes (JSON)."""

    def restore(self, state: dict) -> None: ...


class GymSource:
    """Practice in simulation, in this process: fast sweeps, same numbers for the same seeds."""

    end_on = "detector"  # practice ends where the learned detector fires

    def __init__(self, cfg: Stage2Config, first_seed: int = 500_000) -> None:
        self.cfg, self.next_seed = cfg, first_seed + cfg.seed * 100_000
        self.generator = torch.Generator().manual_seed(cfg.seed)

    def rollout(self, policy, detector, seeds: list[int]) -> list[PracticeEpisode]:
        """Practice episodes of ``seeds``, and with ``baseline: greedy`` a greedy run of each after them."""
        common = dict(
            task_family=self.cfg.task_family, max_steps=self.cfg.max_steps, end_on=self.end_on, envs=self.cfg.envs
        )
        episodes = run_episodes(
            policy, detector, seeds, temperature=self.cfg.temperature, chain_temperature=self.cfg.chain_temperature,
            generator=self.generator, greedy_lead=self.cfg.greedy_steps, **common,
        )  # fmt: skip
        if self.cfg.baseline == "greedy":
            greedy = run_episodes(policy, detector, seeds, greedy=True, **common)
            for ep in greedy:
                ep.baseline = True
            episodes += greedy
        return episodes

    def state(self) -> dict:
        return {"next_seed": self.next_seed, "generator": encode_rng(self.generator.get_state())}

    def restore(self, state: dict) -> None:
        self.next_seed = state["next_seed"]
        self.generator.set_state(decode_rng(state["generator"]))

    def next_seeds(self) -> list[int]:
        """The seeds of the next ``envs`` episodes: fresh ones, never practised before."""
        seeds = list(range(self.next_seed, self.next_seed + self.cfg.envs))
        self.next_seed += self.cfg.envs
        return seeds

    def collect(self, policy, detector, min_steps, loop):
        episodes, steps = [], 0
        while steps < min_steps:
            batch = self.rollout(policy, detector, self.next_seeds())
            episodes += batch
            steps += sum(len(ep.practised) for ep in batch)
        return episodes


def buffer_steps(
    episodes: Sequence[PracticeEpisode], cfg: Stage2Config, rng: np.random.Generator
) -> list[BufferedStep]:
    """Label every practised step (not a greedy lead's), then keep exactly N×B of them (a random
    subset; the rest is cleared), their returns standardised over the kept steps with
    ``normalize_returns``."""
    steps = []
    greedy = {ep.seed: float(ep.detected_success) for ep in episodes if ep.baseline}
    for ep in episodes:
        if ep.length == 0 or ep.baseline:
            continue
        if cfg.reward == "success":
            returns = np.full(ep.length, float(ep.detected_success))
            if cfg.baseline == "greedy":
                if ep.seed not in greedy:
                    raise ValueError(f"baseline: greedy, and seed {ep.seed} was practised without a greedy run")
                returns -= greedy[ep.seed]
        else:
            bonus = cfg.success_bonus if ep.detected_success else 0.0
            _, returns = label_episode(ep.distances, cfg.gamma, success_bonus=bonus, success=ep.detected_success)
        steps += [BufferedStep(ep, t, float(returns[t])) for t in ep.practised]
    size = cfg.updates * cfg.minibatch
    if len(steps) < size:
        raise ValueError(f"the source delivered {len(steps)} steps; a loop needs N×B = {size}")
    kept = [steps[i] for i in rng.permutation(len(steps))[:size]]
    if cfg.normalize_returns:
        returns = np.array([s.ret for s in kept])
        mean, std = returns.mean(), returns.std() + 1e-8
        kept = [BufferedStep(s.episode, s.t, (s.ret - mean) / std) for s in kept]
    return kept


@torch.no_grad()
def sampled_log_probs(policy: EFM, steps: Sequence[BufferedStep], batch: int, chain: bool) -> torch.Tensor:
    """log p of every buffered step's tokens under the policy before the loop's first update: the
    one that practised them (the buffer is on-policy), whichever source delivered them."""
    parts = []
    for i in range(0, len(steps), batch):
        chunk = steps[i : i + batch]
        tokens = np.stack([s.episode.tokens[s.t] for s in chunk])
        parts.append(policy.action_log_prob([s.episode.observation(s.t) for s in chunk], tokens, chain=chain))
    return torch.cat(parts)


def update(
    policy: EFM,
    optimizer,
    steps: Sequence[BufferedStep],
    cfg: Stage2Config,
    reference: EFM | None = None,
    demonstrations: Demonstrations | None = None,
    rng: np.random.Generator | None = None,
    reader: EFM | None = None,
) -> list[dict[str, float]]:
    """N updates over consecutive minibatches of the shuffled buffer: each step used once;
    ``reference``: the frozen Stage 1 policy the KL term (``kl_coef``) holds it to;
    ``demonstrations``: what ``demo_coef`` co-trains on, drawn with ``rng``; ``consensus_coef``
    trains the target place toward the episode's consensus (``consensus``), said by ``reader``
    where given, else by the policy. Returns each update's terms (total loss,
    REINFORCE's, the KL, co-training's, self-training's): how far the policy moved, and why."""
    metrics, labelled = [], {}
    tokenizer = policy.embodiment.action
    chain = cfg.chain_temperature > 0
    sampled = sampled_log_probs(policy, steps, cfg.minibatch, chain) if cfg.clip > 0 else None
    if cfg.consensus_coef > 0:
        slots = labelled_slots(tokenizer, reader and reader.embodiment.action)
    for u in range(cfg.updates):
        batch = steps[u * cfg.minibatch : (u + 1) * cfg.minibatch]
        observations = [s.episode.observation(s.t) for s in batch]
        out = reinforce_loss(
            policy,
            observations,
            np.stack([s.episode.tokens[s.t] for s in batch]),
            [s.ret for s in batch],
            coef=cfg.coef,
            chain=chain,
            reference=reference,
            kl_coef=cfg.kl_coef,
            sampled_log_prob=None if sampled is None else sampled[u * cfg.minibatch : (u + 1) * cfg.minibatch],
            clip=cfg.clip,
        )
        loss, terms = out.loss, dict(out.metrics)
        if demonstrations is not None and cfg.demo_coef > 0:
            demo = demonstrations.loss(policy, cfg.demo_batch, rng)
            loss = loss + cfg.demo_coef * demo.loss
            terms["demo/loss"] = demo.loss.item()
        if cfg.consensus_coef > 0:
            for s in batch:
                if id(s.episode) not in labelled:
                    labelled[id(s.episode)] = episode_consensus(s.episode, tokenizer, reader)
            said_here = np.stack([labelled[id(s.episode)][s.t] for s in batch])
            agreed = consensus_loss(policy, observations, said_here, slots)
            loss = loss + cfg.consensus_coef * agreed.loss
            terms["consensus/loss"] = agreed.loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        metrics.append({"loss": loss.item(), **terms})
    return metrics


def self_improve(
    cfg: Stage2Config,
    source: EpisodeSource | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    progress: bool = True,
) -> dict:
    """Paper Algorithm 1. Keeps the checkpoint with the best moving-window detected success and
    stops on plateau (``Stage2Run``); a killed run resumes from ``out/last`` onto the path the
    uninterrupted one would take. Returns the per-loop history."""
    run = Stage2Run(cfg, source or GymSource(cfg))
    for loop in run.loops(progress):
        # Practise with the current policy until the buffer can hold N×B steps.
        episodes = run.collect(loop)
        # Label each step with its return from the frozen reward model; the buffer keeps N×B.
        buffer = buffer_steps(episodes, cfg, run.rng)
        # N REINFORCE updates, each on B steps of the buffer, the vision tower frozen.
        terms = update(run.policy, run.optimizer, buffer, cfg, run.reference, run.demonstrations, run.rng, run.reader)
        # Clear the buffer and publish the new policy.
        path = run.publish(loop, episodes, terms)
        if on_checkpoint is not None:
            on_checkpoint(path, loop)
    return run.close()
