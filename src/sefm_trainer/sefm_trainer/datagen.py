"""Demonstration episodes from the scripted demonstrator, written as episode bags in parallel."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from tqdm import tqdm

from sefm_interfaces.episode_protocol import EpisodeMeta, EpisodeStart
from sefm_interfaces.typed_config import StrictModel, UsageError
from sefm_policy.config import ALOHA_DEFAULT_HIGH, ALOHA_DEFAULT_LOW
from sefm_policy.tokenizers import JointTokenizer, language_table_action
from sefm_sim_bridge.envs import TASK_FAMILIES, embodiment_of

from .bag_writer import EpisodeWriter

EPOCH_NS = 1_700_000_000 * 1_000_000_000  # fixed start time: identical seeds give identical bags
SEED_SPACING_NS = 100 * 1_000_000_000  # each seed's episode starts 100 s after the previous seed's
MAX_SEED = (2**31 - 1 - 1_000 - EPOCH_NS // 1_000_000_000) * 1_000_000_000 // SEED_SPACING_NS  # int32 header seconds


class DatagenConfig(StrictModel):
    task_family: Literal[TASK_FAMILIES] = Field(
        "block2block", description="a LanguageTable family, or insertion (ALOHA)"
    )
    image_size: int = Field(96, gt=0, description="LanguageTable camera image side in pixels")
    camera_size: tuple[int, int] = Field((32, 64), description="ALOHA: each camera's (height, width) in pixels")
    max_steps: int = Field(100, gt=0)
    noise_std: float = Field(0.004, ge=0, description="demonstrator action noise (m per step)")
    hold_steps: int = Field(
        0, ge=0, description="LanguageTable: steps the demonstrator backs off past its goal while the task stays done"
    )
    namespace: str = "/robot_0"

    @model_validator(mode="after")
    def _hold_is_planar(self) -> DatagenConfig:
        if self.hold_steps and embodiment_of(self.task_family) == "aloha":
            raise ValueError("hold_steps is for LanguageTable tasks; the insertion demonstrator has no back-off")
        return self


def episode_name(family: str, seed: int) -> str:
    return f"{family}_{seed:06d}"


class PlanarTopics:
    """LanguageTable: the front camera, effector pose and objects' places; a TwistStamped per 10 Hz step."""

    def __init__(self, env, demo) -> None:
        self.env = env
        self.tokenizer = language_table_action()
        self.period_s = 1.0 / env.metadata["render_fps"]
        self.step_ns = int(1e9 / env.metadata["render_fps"])
        self.meta = {
            "embodiment": "language_table",
            "cameras": ["front"],
            "control_hz": float(env.metadata["render_fps"]),
        }

    def observe(self, writer: EpisodeWriter, stamp: int, obs: dict) -> None:
        writer.image("front", stamp, obs["rgb"])
        writer.effector_pose(stamp, obs["effector"])
        writer.objects(stamp, self.env.object_positions())

    def command(self, writer: EpisodeWriter, stamp: int, obs_stamp: int, action: np.ndarray) -> None:
        writer.action_tokens(stamp, self.tokenizer.encode(action))
        writer.planar_command(stamp, obs_stamp, action, self.period_s)


class JointTopics:
    """ALOHA: four cameras and joint_states per chunk step; a JointTrajectory of the chunk's
    targets (tokens under the default +-pi normalisation; training takes its own from the data)."""

    def __init__(self, env, demo) -> None:
        from sefm_sim_bridge.aloha import CAMERAS, CONTROL_HZ, JOINT_NAMES

        self.cameras, self.names, self.period_s = CAMERAS, JOINT_NAMES, 1.0 / CONTROL_HZ
        self.tokenizer = JointTokenizer(ALOHA_DEFAULT_LOW, ALOHA_DEFAULT_HIGH, chunk=demo.chunk)
        self.step_ns = demo.chunk * 1_000_000_000 // CONTROL_HZ
        self.meta = {"embodiment": "aloha", "cameras": list(CAMERAS), "control_hz": float(CONTROL_HZ),
                     "extra": {"chunk": demo.chunk}}  # fmt: skip

    def observe(self, writer: EpisodeWriter, stamp: int, obs: dict) -> None:
        for cam in self.cameras:
            writer.image(cam, stamp, obs["images"][cam])
        writer.joint_state(stamp, self.names, obs["qpos"])

    def command(self, writer: EpisodeWriter, stamp: int, obs_stamp: int, chunk: np.ndarray) -> None:
        writer.action_tokens(stamp, self.tokenizer.encode(chunk))
        writer.joint_command(stamp, obs_stamp, self.names, chunk, self.period_s)


def record_demonstration(env, demo, seed: int, out_dir: Path, cfg: DatagenConfig) -> EpisodeMeta:
    """Run one demonstration from ``seed`` and write it as an episode bag."""
    topics = (JointTopics if embodiment_of(cfg.task_family) == "aloha" else PlanarTopics)(env, demo)
    obs, info = env.reset(seed=seed)
    demo.reset(seed)
    t0 = EPOCH_NS + seed * SEED_SPACING_NS
    with EpisodeWriter(out_dir, episode_name(cfg.task_family, seed), cfg.namespace) as writer:
        writer.event(t0, EpisodeStart(instruction=obs["instruction"], seed=seed))
        writer.instruction(t0, obs["instruction"])
        topics.observe(writer, t0, obs)
        stamp, steps, goal_at, held = t0, 0, None, 0
        while True:
            # Past its goal (``hold_steps``) the demonstrator backs off, stopping at the first step
            # that undoes the task: demonstrations otherwise end on their goal, and a steps-to-go
            # model never sees the done boards practice goes on to show it (docs/results, session 23).
            action = demo.act(env) if goal_at is None else demo.back_off(env)
            topics.command(writer, stamp + 1000, stamp, action)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            stamp = t0 + steps * topics.step_ns
            topics.observe(writer, stamp, obs)
            if goal_at is not None:
                if not info["success"]:
                    break
                held += 1
                if held == cfg.hold_steps:
                    break
            elif terminated:
                goal_at = steps
                if not cfg.hold_steps:
                    break
            elif truncated:
                break
        success = goal_at is not None
        meta = EpisodeMeta(
            instruction=obs["instruction"],
            length=steps,
            success=success,
            termination="success" if success else "max_steps",
            seed=seed,
            policy_version="scripted",
            task_family=cfg.task_family,
            namespace=cfg.namespace,
            **topics.meta,
        )
        task = getattr(env, "task", None)
        if hasattr(task, "obj"):  # LanguageTable: which objects the instruction names
            meta.extra |= {"obj": task.obj, "target": task.target_obj, "location": task.location}
        if cfg.hold_steps and success:
            meta.extra |= {"goal_at": goal_at, "held": held}
        writer.commit(meta, stamp + 1000)
    return meta


def _make(cfg: DatagenConfig):
    """The env and demonstrator of a task family."""
    if embodiment_of(cfg.task_family) == "aloha":
        from sefm_sim_bridge.aloha import AlohaInsertionEnv
        from sefm_sim_bridge.aloha_demonstrator import InsertionDemonstrator

        return AlohaInsertionEnv(cfg.camera_size, cfg.max_steps), InsertionDemonstrator()
    from sefm_sim_bridge.demonstrator import PushDemonstrator
    from sefm_sim_bridge.language_table import LanguageTableEnv

    env = LanguageTableEnv(cfg.task_family, image_size=(cfg.image_size, cfg.image_size), max_steps=cfg.max_steps)
    return env, PushDemonstrator(noise_std=cfg.noise_std)


def _worker(args) -> tuple[int, bool, int]:
    seeds, out_dir, cfg = args
    env, demo = _make(cfg)
    results = []
    try:
        for seed in seeds:
            meta = record_demonstration(env, demo, seed, Path(out_dir), cfg)
            results.append((seed, meta.success, meta.length))
    finally:
        env.close()
    return results


def generate(episodes: int, out_dir: str | Path, cfg: DatagenConfig, seed: int = 0, workers: int = 1) -> dict:
    """Write ``episodes`` demonstrations (seeds ``seed``..``seed+episodes-1``); already written
    episodes are kept, so an interrupted run continues where it stopped."""
    if seed < 0 or seed + episodes - 1 > MAX_SEED:
        raise UsageError(
            f"demonstration seeds must lie in [0, {MAX_SEED}] (ROS stamps count seconds in int32); "
            f"asked for {seed}..{seed + episodes - 1}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [s for s in range(seed, seed + episodes) if not (out_dir / episode_name(cfg.task_family, s)).exists()]
    chunks = [todo[i : i + 4] for i in range(0, len(todo), 4)]
    results = []
    with tqdm(total=episodes, initial=episodes - len(todo), desc="demonstrations", unit="ep") as bar:
        if workers <= 1:
            for chunk in chunks:
                results += _worker((chunk, out_dir, cfg))
                bar.update(len(chunk))
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for part in pool.imap_unordered(_worker, [(c, out_dir, cfg) for c in chunks]):
                    results += part
                    bar.update(len(part))
    return {
        "written": len(results),
        "kept": episodes - len(todo),
        "success_rate": (sum(s for _, s, _ in results) / len(results)) if results else None,
        "mean_length": (sum(n for *_, n in results) / len(results)) if results else None,
    }
