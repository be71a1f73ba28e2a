"""Demonstration episodes from the scripted demonstrator, written as episode bags in parallel."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sefm_policy.tokenizers import SignMagnitudeActionTokenizer

from .bag_writer import EpisodeWriter
from .episode import EpisodeMeta

EPOCH_NS = 1_700_000_000 * 1_000_000_000  # fixed start time: identical seeds give identical bags


@dataclass(frozen=True)
class DatagenConfig:
    task_family: str = "block2block"
    image_size: tuple[int, int] = (64, 64)
    max_steps: int = 100
    noise_std: float = 0.004
    namespace: str = "/robot_0"


def episode_name(family: str, seed: int) -> str:
    return f"{family}_{seed:06d}"


def record_demonstration(env, demo, seed: int, out_dir: Path, cfg: DatagenConfig) -> EpisodeMeta:
    """Run one demonstration from ``seed`` and write it as an episode bag."""
    tokenizer = SignMagnitudeActionTokenizer()
    period_ns = int(1e9 / env.metadata["render_fps"])
    obs, info = env.reset(seed=seed)
    demo.reset(seed)
    t0 = EPOCH_NS + seed * 1_000_000_000_000
    with EpisodeWriter(out_dir, episode_name(cfg.task_family, seed), cfg.namespace) as writer:
        writer.event(t0, {"event": "start", "instruction": obs["instruction"], "seed": seed})
        writer.instruction(t0, obs["instruction"])
        writer.image("front", t0, obs["rgb"])
        writer.effector_pose(t0, obs["effector"])
        stamp, steps, done = t0, 0, False
        while not done:
            action = demo.act(env)
            writer.action_tokens(stamp + 1000, tokenizer.encode(action))
            writer.planar_command(stamp + 1000, stamp, action, period_ns / 1e9)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            stamp = t0 + steps * period_ns
            writer.image("front", stamp, obs["rgb"])
            writer.effector_pose(stamp, obs["effector"])
            done = terminated or truncated
        meta = EpisodeMeta(
            instruction=obs["instruction"],
            embodiment="language_table",
            length=steps,
            success=bool(info["success"]),
            termination="success" if info["success"] else "max_steps",
            seed=seed,
            policy_version="scripted",
            task_family=cfg.task_family,
            namespace=cfg.namespace,
            cameras=["front"],
            control_hz=float(env.metadata["render_fps"]),
        )
        writer.commit(meta, stamp + 1000)
    return meta


def _worker(args) -> tuple[int, bool, int]:
    seeds, out_dir, cfg = args
    from sefm_sim_bridge.demonstrator import PushDemonstrator
    from sefm_sim_bridge.language_table import LanguageTableEnv

    env = LanguageTableEnv(cfg.task_family, image_size=cfg.image_size, max_steps=cfg.max_steps)
    demo = PushDemonstrator(noise_std=cfg.noise_std)
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
