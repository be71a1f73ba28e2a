"""Closed-loop speed through the ROS graph (sim bridge -> policy -> sim bridge, lockstep) for 1
and 4 simulated robots, beside the same policy and sim called in one process.

Latency is image -> command: when the probe receives a command, minus the stamp of the frame
that command answers (its header carries that stamp). Prints one JSON object.
Usage: python benchmarks/loop_bench.py [--seconds 20] [--robots 1 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from geometry_msgs.msg import TwistStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from sefm.harness import graph, running, spin_until
from sefm_interfaces.ros_common import stamp_ns
from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_sim_bridge.language_table import LanguageTableEnv


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2)}


def in_process(model: EFM, seconds: float) -> dict:
    torch.set_num_threads(1)
    env = LanguageTableEnv("block2block", max_steps=10**9)
    obs, _ = env.reset(seed=0)
    latencies, steps, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        sample = model.sample_actions(
            [Observation(images=(obs["rgb"], obs["prev_rgb"]), instruction=obs["instruction"])]
        )
        latencies.append(1000 * (time.perf_counter() - t))
        obs, *_ = env.step(sample.actions[0])
        steps += 1
    env.close()
    return {"steps_per_s": round(steps / seconds, 1), "policy_latency": percentiles(latencies)}


def through_graph(checkpoint: Path, robots: int, seconds: float, log_dir: Path) -> dict:
    nodes = {
        "sim_bridge": {"mode": "lockstep"},
        "policy": {"checkpoint": str(checkpoint), "actuation_enabled": True},
        "episode_manager": {"max_steps": 10**6, "wait_for_topics": ["policy/command"]},
    }
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    with running(graph(nodes, robots=robots), log_dir) as (bringup, probe, executor):
        received: dict[str, list] = {f"/robot_{r}": [] for r in range(robots)}
        for ns, log in received.items():
            probe.create_subscription(
                TwistStamped, f"{ns}/policy/command", lambda m, log=log: log.append((time.time_ns(), stamp_ns(m))), qos
            )
        spin_until(executor, bringup, lambda: all(len(v) >= 20 for v in received.values()), 300, "every robot acting")
        for log in received.values():
            log.clear()
        start = time.monotonic()
        spin_until(executor, bringup, lambda: time.monotonic() - start >= seconds, seconds + 30, "the window")
    per_robot = [len(v) / seconds for v in received.values()]
    latencies = [(t - s) / 1e6 for v in received.values() for t, s in v]
    return {
        "robots": robots,
        "steps_per_s_per_robot": round(float(np.mean(per_robot)), 1),
        "steps_per_s_total": round(float(np.sum(per_robot)), 1),
        "image_to_command": percentiles(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    with tempfile.TemporaryDirectory() as tmp:
        model = EFM.build(EFMConfig()).eval()
        checkpoint = save_checkpoint(model, Path(tmp) / "tiny")
        result = {"machine": {"cores": os.cpu_count()}, "in_process": in_process(model, args.seconds)}
        for robots in args.robots:
            result[f"graph_{robots}_robots"] = through_graph(
                checkpoint, robots, args.seconds, Path(tmp) / f"logs{robots}"
            )
        base = result["in_process"]["policy_latency"]["p50_ms"]
        for robots in args.robots:
            g = result[f"graph_{robots}_robots"]
            g["latency_ratio_to_in_process_p50"] = round(g["image_to_command"]["p50_ms"] / base, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
