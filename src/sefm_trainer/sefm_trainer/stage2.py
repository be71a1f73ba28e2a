"""Stage 2: self-improvement with on-policy REINFORCE (paper Algorithm 1, App. A.3, C).

Each loop: robots practise until N×B steps are collected (episodes end on the frozen
detector's success, d <= s, or max length); every step is labelled with r_t = d_t - d_{t+1}
and the Monte Carlo return R_t (gamma 0.9); N updates on minibatches of B drawn without
replacement, loss -c·R·log p(a|o,g); the buffer is cleared; the new checkpoint is published.
The vision tower stays frozen. Where the episodes come from is a source's business (the
in-process gym rollout here; the ROS fleet through episode bags), so the algorithm is the same.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from pydantic import Field

from sefm_policy.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from sefm_policy.config import StrictModel
from sefm_policy.losses import reinforce_loss
from sefm_policy.model import EFM
from sefm_reward.detector import StepsToGoDetector, label_episode
from sefm_sim_bridge.envs import TASK_FAMILIES

from .rollout import PracticeEpisode, run_episodes
from .trainer_state import load_trainer_state, save_resume_point, state_path


class Stage2Config(StrictModel):
    policy: str = Field(..., description="Stage 1 checkpoint to improve (best_bc)")
    reward_model: str = Field(..., description="frozen Stage 1 checkpoint for d(o,g) (best_steps)")
    out: str
    loops: int = Field(30, gt=0)
    updates: int = Field(16, gt=0, description="N: updates per loop")
    minibatch: int = Field(64, gt=0, description="B: steps per update")
    gamma: float = Field(0.9, ge=0, le=1)
    coef: float = Field(5e-2, gt=0, description="c in -c·R·log p")
    lr: float = Field(1e-4, gt=0)
    temperature: float = Field(1.0, gt=0)
    success_threshold: float = Field(3.0, ge=0, description="s: detected success when d <= s")
    success_bonus: float = Field(0.0, ge=0, description="added to the reward of a detected success (ALOHA)")
    max_steps: int = Field(100, gt=0)
    task_family: Literal[TASK_FAMILIES] = "block2block"
    envs: int = Field(8, gt=0, description="in-process rollout: simulated robots practising at once")
    window: int = Field(3, gt=0, description="loops in the moving window of detected success")
    patience: int = Field(10, ge=0, description="stop after this many loops without a better window (0: never)")
    seed: int = 0


@dataclass
class Step:
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
        return run_episodes(
            policy, detector, seeds, task_family=self.cfg.task_family, max_steps=self.cfg.max_steps,
            temperature=self.cfg.temperature, end_on=self.end_on, envs=self.cfg.envs, generator=self.generator,
        )  # fmt: skip

    def state(self) -> dict:
        return {"next_seed": self.next_seed, "generator": _encode_bytes(self.generator.get_state())}

    def restore(self, state: dict) -> None:
        self.next_seed = state["next_seed"]
        self.generator.set_state(_decode_bytes(state["generator"]))

    def collect(self, policy, detector, min_steps, loop):
        episodes, steps = [], 0
        while steps < min_steps:
            seeds = list(range(self.next_seed, self.next_seed + self.cfg.envs))
            self.next_seed += self.cfg.envs
            batch = self.rollout(policy, detector, seeds)
            episodes += batch
            steps += sum(ep.length for ep in batch)
        return episodes


def buffer_steps(episodes: Sequence[PracticeEpisode], cfg: Stage2Config, rng: np.random.Generator) -> list[Step]:
    """Label every step, then keep exactly N×B of them (a random subset; the rest is cleared)."""
    steps = []
    for ep in episodes:
        if ep.length == 0:
            continue
        bonus = cfg.success_bonus if ep.detected_success else 0.0
        _, returns = label_episode(ep.distances, cfg.gamma, success_bonus=bonus, success=ep.detected_success)
        steps += [Step(ep, t, float(returns[t])) for t in range(ep.length)]
    size = cfg.updates * cfg.minibatch
    if len(steps) < size:
        raise ValueError(f"the source delivered {len(steps)} steps; a loop needs N×B = {size}")
    return [steps[i] for i in rng.permutation(len(steps))[:size]]


def update(policy: EFM, optimizer, steps: Sequence[Step], cfg: Stage2Config) -> list[float]:
    """N updates over consecutive minibatches of the shuffled buffer: each step used once."""
    losses = []
    for u in range(cfg.updates):
        batch = steps[u * cfg.minibatch : (u + 1) * cfg.minibatch]
        out = reinforce_loss(
            policy,
            [s.episode.observation(s.t) for s in batch],
            np.stack([s.episode.tokens[s.t] for s in batch]),
            [s.ret for s in batch],
            coef=cfg.coef,
        )
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    return losses


def self_improve(
    cfg: Stage2Config,
    source: EpisodeSource | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    progress: bool = True,
) -> dict:
    """Run the loops; keep the checkpoint with the best moving-window detected success and stop on
    plateau. Returns the per-loop history.

    A killed run resumes from ``out/last``: policy, optimizer, loop counter, best-window state,
    the buffer's and the source's random state, so it goes on as the uninterrupted run would."""
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    source = source or GymSource(cfg)
    rng = np.random.default_rng(cfg.seed)
    last = out / "last"
    resuming = (last / "manifest.json").exists()
    policy = load_checkpoint(last if resuming else cfg.policy).train()
    policy.freeze_vision_tower()
    detector = StepsToGoDetector(load_checkpoint(cfg.reward_model), cfg.success_threshold)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    run = {"best": [-1.0, None], "since_best": 0, "extra_episodes": 0}
    history, start = [], 0
    if resuming:
        start, run = load_trainer_state(optimizer, state_path(out, read_manifest(last)["metadata"]["loop"]))
        rng.bit_generator.state = run["rng"]
        source.restore(run["source"])
        torch.set_rng_state(_decode_bytes(run["torch"]))
        history = [h for h in _read_jsonl(out / "stage2.jsonl") if h["loop"] <= start]
        print(f"stage 2: resuming {out} after loop {start}")
    with (out / "stage2.jsonl").open("w") as f:  # drops a record written after the last resume point
        f.writelines(json.dumps(h) + "\n" for h in history)
    metrics = (out / "stage2.jsonl").open("a")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"))
    since_best = run["since_best"]
    for loop in tqdm(range(start + 1, cfg.loops + 1), desc="stage 2", unit="loop", disable=not progress):
        if cfg.patience and since_best >= cfg.patience:
            break
        policy.eval()
        with torch.no_grad():
            episodes = source.collect(policy, detector, cfg.updates * cfg.minibatch, loop)
        policy.train()
        losses = update(policy, optimizer, buffer_steps(episodes, cfg, rng), cfg)
        run["extra_episodes"] += len(episodes)
        record = {
            "loop": loop,
            "episodes": len(episodes),
            "extra_episodes": run["extra_episodes"],
            "detected_success": float(np.mean([ep.detected_success for ep in episodes])),
            "ground_truth_success": float(np.mean([ep.ground_truth_success for ep in episodes])),
            "mean_length": float(np.mean([ep.length for ep in episodes])),
            "loss": float(np.mean(losses)),
        }
        window = float(np.mean([h["detected_success"] for h in [*history, record][-cfg.window :]]))
        record["window_detected_success"] = window
        if window > run["best"][0]:
            run["best"], since_best = [window, loop], 0
            save_checkpoint(policy, out / "best", {"version": loop, "loop": loop, "window_detected_success": window})
        else:
            since_best += 1
        history.append(record)
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        run.update(
            since_best=since_best,
            rng=rng.bit_generator.state,
            source=source.state(),
            torch=_encode_bytes(torch.get_rng_state()),
        )
        path = save_resume_point(out, policy, optimizer, loop, run, {"version": loop, "loop": loop})
        for key, value in record.items():
            if key != "loop":
                writer.add_scalar(f"stage2/{key}", value, record["extra_episodes"])
        writer.flush()
        if on_checkpoint is not None:
            on_checkpoint(path, loop)
    metrics.close()
    writer.close()
    return {"history": history, "best_loop": run["best"][1], "best_window_detected_success": run["best"][0]}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _encode_bytes(state: torch.Tensor) -> str:
    """A torch RNG state (uint8 tensor) as JSON-safe text."""
    return base64.b64encode(state.numpy().tobytes()).decode()


def _decode_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
