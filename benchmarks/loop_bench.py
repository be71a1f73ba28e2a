"""Closed-loop speed through the ROS graph (sim bridge -> policy -> sim bridge, lockstep) for 1
and 4 simulated robots, beside the same policy and sim called in one process; with
``--reward-model`` every robot's reward node reads d as practice does; with ``--servers`` each
fleet also runs with one policy process and one reward process batching every robot's frames
(``fleet.batch_policy``, ``fleet.batch_reward``) beside one process per robot.

Steps/s are the frames each robot's sim publishes (one per answered frame in lockstep). Latency
is image -> command: when the probe receives a command, minus the stamp of the frame that command
answers (its header carries that stamp). Prints one JSON object.
Usage: python benchmarks/loop_bench.py [--seconds 20] [--robots 1 4] [--servers] [--checkpoint DIR]
    [--reward-model DIR]
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
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sefm.harness import graph, running, spin_until
from sefm_interfaces.ros_common import stamp_ns
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_sim_bridge.language_table import LanguageTableEnv


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2)}


def in_process(model: EFM, seconds: float, task: str) -> dict:
    torch.set_num_threads(1)
    env = LanguageTableEnv(task, max_steps=10**9)
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


def through_graph(
    checkpoint: Path, robots: int, seconds: float, log_dir: Path, task: str, server: bool, reward: Path | None
) -> dict:
    nodes = {
        "sim_bridge": {"mode": "lockstep", "task_family": task},
        "policy": {"checkpoint": str(checkpoint), "actuation_enabled": True},
        "episode_manager": {"max_steps": 10**6, "wait_for_topics": ["policy/command"]},
    }
    if reward is not None:  # s = 0: no frame ends an episode, every frame is read
        nodes["reward"] = {"checkpoint": str(reward), "success_threshold": 0.0}
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    fleet = graph(nodes, robots=robots, batch_policy=server, batch_reward=server)
    with running(fleet, log_dir) as (bringup, probe, executor):
        frames: dict[str, set] = {f"/robot_{r}": set() for r in range(robots)}
        answers: dict[str, list] = {ns: [] for ns in frames}
        verdicts: dict[str, list] = {ns: [] for ns in frames}
        for ns in frames:
            probe.create_subscription(
                Header, f"{ns}/reward/success", lambda m, log=verdicts[ns]: log.append(stamp_ns(m)), qos
            )
            probe.create_subscription(
                Image, f"{ns}/camera/front/image_raw", lambda m, seen=frames[ns]: seen.add(stamp_ns(m)), qos
            )
            probe.create_subscription(
                TwistStamped,
                f"{ns}/policy/command",
                lambda m, log=answers[ns]: log.append((time.time_ns(), stamp_ns(m))),
                qos,
            )
        spin_until(executor, bringup, lambda: all(len(v) >= 20 for v in answers.values()), 300, "every robot acting")
        for ns in frames:
            frames[ns].clear()
            answers[ns].clear()
            verdicts[ns].clear()
        start = time.monotonic()
        spin_until(executor, bringup, lambda: time.monotonic() - start >= seconds, seconds + 30, "the window")
    # A lockstep sim steps once per answered frame; the policy's stop commands (a hold when the
    # episode manager is starved of CPU) answer no frame and are not counted.
    per_robot = [len(frames[ns]) / seconds for ns in frames]
    latencies = [(t - s) / 1e6 for ns, log in answers.items() for t, s in log if s in frames[ns]]
    stops = sum(s not in frames[ns] for ns, log in answers.items() for _, s in log)
    read = [sum(s in frames[ns] for s in set(verdicts[ns])) / max(len(frames[ns]), 1) for ns in frames]
    return {
        "robots": robots,
        "processes_per_node": 1 if server else robots,
        "steps_per_s_per_robot": round(float(np.mean(per_robot)), 1),
        "frames_read_by_reward": round(float(np.mean(read)), 2) if reward is not None else None,
        "steps_per_s_total": round(float(np.sum(per_robot)), 1),
        "image_to_command": percentiles(latencies),
        "commands_answering_no_frame": stops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--servers", action="store_true", help="also run each fleet with one batching policy and reward process"
    )
    parser.add_argument("--checkpoint", help="a policy checkpoint (default: the untrained tiny EFM)")
    parser.add_argument("--reward-model", help="a steps-to-go checkpoint: each robot's reward node reads d with it")
    parser.add_argument("--task", default="block2block", help="the sim's task family")
    args = parser.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            checkpoint = Path(args.checkpoint).resolve()
            model = load_checkpoint(checkpoint).eval()
        else:
            model = EFM.build(EFMConfig()).eval()
            checkpoint = save_checkpoint(model, Path(tmp) / "tiny")
        reward = Path(args.reward_model).resolve() if args.reward_model else None
        result = {
            "machine": {"cores": os.cpu_count()},
            "checkpoint": str(args.checkpoint or "untrained tiny EFM"),
            "reward_model": args.reward_model,
            "in_process": in_process(model, args.seconds, args.task),
        }
        base = result["in_process"]["policy_latency"]["p50_ms"]
        for robots in args.robots:
            for server in (False, True) if args.servers else (False,):
                key = f"graph_{robots}_robots" + ("_servers" if server else "")
                g = through_graph(checkpoint, robots, args.seconds, Path(tmp) / key, args.task, server, reward)
                g["latency_ratio_to_in_process_p50"] = round(g["image_to_command"]["p50_ms"] / base, 2)
                result[key] = g
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
