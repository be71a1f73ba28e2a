"""Simulation speed on this machine: env steps/s with rendering, datagen episodes/min, bytes/episode.

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
