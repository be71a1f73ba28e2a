"""Simulation speed on this machine: env steps/s with rendering, datagen episodes/min, bytes/episode;
ALOHA at our render settings beside gym-aloha's default rendering.

Prints one JSON object. Usage: python benchmarks/sim_bench.py [--episodes N] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from sefm_sim_bridge.language_table import DEFAULT_IMAGE_SIZE, LanguageTableEnv
from sefm_trainer.datagen import DatagenConfig, generate


def steps_per_second(family: str, image_size, render: bool, steps: int = 300) -> float:
    env = LanguageTableEnv(family, image_size=image_size, render_images=render, max_steps=10_000)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(10):
        env.step(rng.uniform(-0.05, 0.05, 2))
    t = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(-0.05, 0.05, 2))
    elapsed = time.perf_counter() - t
    env.close()
    return round(steps / elapsed, 1)


def aloha_speed(chunks: int = 40) -> dict:
    """Our ALOHA env (4 cameras at 32x64, no shadows/reflections, rendered once per chunk step)
    against gym-aloha's AlohaEnv (3 cameras at 480x640 with shadows, rendered every 50 Hz step),
    on the same held joint command. ``realtime_factor``: simulated seconds per wall second."""
    from gym_aloha.env import AlohaEnv

    from sefm_sim_bridge.aloha import CAMERAS, DEFAULT_CAMERA_SIZE, START_COMMAND, SUBSTEPS, AlohaInsertionEnv

    ours = AlohaInsertionEnv(max_steps=10_000)
    ours.reset(seed=0)
    chunk = np.tile(START_COMMAND, (5, 1))
    t = time.perf_counter()
    for _ in range(chunks):
        ours.step(chunk)
    ours_s = (time.perf_counter() - t) / chunks
    ours.close()
    theirs = AlohaEnv("insertion")
    theirs.reset(seed=0)
    steps = 20
    t = time.perf_counter()
    for _ in range(steps):
        theirs.step(START_COMMAND.astype(np.float32))
    theirs_s = (time.perf_counter() - t) / steps
    chunk_sim_s = 5 * SUBSTEPS * 0.02
    h, w = DEFAULT_CAMERA_SIZE
    return {
        f"ours_{len(CAMERAS)}_cameras_{h}x{w}": {
            "chunk_steps_per_s": round(1 / ours_s, 1),
            "control_steps_per_s_10hz": round(5 / ours_s, 1),
            "realtime_factor": round(chunk_sim_s / ours_s, 1),
        },
        "gym_aloha_default_3_cameras_480x640": {
            "env_steps_per_s_50hz": round(1 / theirs_s, 1),
            "control_steps_per_s_10hz": round(1 / (SUBSTEPS * theirs_s), 1),
            "realtime_factor": round(0.02 / theirs_s, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    h, w = DEFAULT_IMAGE_SIZE
    result = {
        "machine": {"cores": os.cpu_count(), "mujoco_gl": os.environ.get("MUJOCO_GL")},
        f"env_steps_per_s_render_{h}x{w}": steps_per_second("block2block", DEFAULT_IMAGE_SIZE, True),
        "env_steps_per_s_render_224x224": steps_per_second("block2block", (224, 224), True),
        "env_steps_per_s_no_render": steps_per_second("block2block", DEFAULT_IMAGE_SIZE, False),
        "banana_env_steps_per_s_render_64x64": steps_per_second("banana", DEFAULT_IMAGE_SIZE, True),
        "aloha_insertion": aloha_speed(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = generate(args.episodes, tmp, DatagenConfig(), seed=0, workers=args.workers)
        minutes = (time.perf_counter() - t) / 60
        sizes = [sum(f.stat().st_size for f in p.iterdir()) for p in Path(tmp).iterdir()]
    result["datagen"] = {
        "episodes": args.episodes,
        "workers": args.workers,
        "episodes_per_min": round(args.episodes / minutes, 1),
        "demonstrator_success_rate": summary["success_rate"],
        "mean_episode_length": summary["mean_length"],
        "bytes_per_episode_mean": int(np.mean(sizes)),
        "bytes_per_step_mean": int(np.sum(sizes) / (summary["mean_length"] * args.episodes)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
