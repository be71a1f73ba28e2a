"""Soak: N simulated robots practising for M minutes through the whole graph (sim bridge, policy,
reward, recorder, episode manager per robot), then every bag read back. Not in ``make test``.

Counts episodes ended (the managers' ``end`` events), landed (bags), lost (ended but never
landed), unreadable (landed but skipped by the reader), detector false successes (detected
success where the sim's verdict on the final frame says no) and episodes with no ground truth;
each node process's peak memory (RSS) and its growth from the end of the first minute to the
end; image -> command latency (command received minus the stamp of the frame it answers).
Prints one JSON object. Usage: python benchmarks/soak.py [--robots 4] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from sefm.harness import graph, practice_nodes, running, spin_until
from sefm_interfaces.episode_protocol import EpisodeEnd, decode_event
from sefm_interfaces.ros_common import stamp_ns
from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.bag_reader import load_episodes

SAMPLE_S = 5.0
WARMUP_S = 60.0


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def soak(checkpoint: Path, robots: int, minutes: float, max_steps: int, threshold: float, tmp: Path) -> dict:
    out = tmp / "episodes"
    config = graph(practice_nodes(checkpoint, out, max_steps=max_steps, threshold=threshold), robots=robots)
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    latencies: list[float] = []
    ended: list[dict] = []
    memory: dict[str, list[tuple[float, float]]] = {}
    with running(config, tmp / "logs") as (bringup, probe, executor):
        for r in range(robots):
            ns = f"/{config.fleet.namespace_prefix}{r}"
            probe.create_subscription(
                TwistStamped,
                f"{ns}/policy/command",
                lambda m: latencies.append((time.time_ns() - stamp_ns(m)) / 1e6),
                qos,
            )

            def on_event(msg, ns=ns):
                event = decode_event(msg.data)
                if isinstance(event, EpisodeEnd):
                    ended.append({"namespace": ns, **event.model_dump()})

            probe.create_subscription(String, f"{ns}/episode/events", on_event, qos)
        start = time.monotonic()
        next_sample = start

        def tick() -> bool:
            nonlocal next_sample
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + SAMPLE_S
                for spec, proc in bringup.procs:
                    mb = rss_mb(proc.pid)
                    if mb is not None:
                        memory.setdefault(spec.fqn, []).append((now - start, mb))
            return now - start >= 60 * minutes

        spin_until(executor, bringup, tick, 60 * minutes + 60, "the soak")
        ended_by_stop = len(ended)
    loaded = load_episodes(out, progress=False)
    landed = loaded.episodes
    per_process = {}
    for fqn, samples in sorted(memory.items()):
        after_warmup = [mb for t, mb in samples if t >= WARMUP_S] or [samples[-1][1]]
        per_process[fqn] = {
            "peak_mb": round(max(mb for _, mb in samples), 1),
            "growth_mb": round(after_warmup[-1] - after_warmup[0], 1),
        }
    lat = np.asarray(latencies)
    false_successes = sum(bool(e.meta.extra.get("detected_success")) for e in landed if e.meta.success is False)
    return {
        "robots": robots,
        "minutes": minutes,
        "episodes_ended": ended_by_stop,
        "episodes_landed": len(landed) + len(loaded.skipped),
        # An episode ended in the last end_grace_s before the stop may be committed at shutdown or dropped.
        "episodes_lost": max(0, ended_by_stop - len(landed) - len(loaded.skipped)),
        "unreadable": [{"path": str(p), "reason": r} for p, r in loaded.skipped],
        "detector_false_successes": false_successes,
        "without_ground_truth": sum(e.meta.success is None for e in landed),
        "steps_landed": int(sum(e.length for e in landed)),
        "image_to_command_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
        } if lat.size else None,
        "memory": per_process,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=40, help="episode length limit")
    parser.add_argument("--checkpoint", help="policy and reward model (default: an untrained tiny EFM)")
    parser.add_argument("--threshold", type=float, default=3.0, help="the detector's s")
    args = parser.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    with tempfile.TemporaryDirectory(prefix="sefm-soak-") as tmp:
        checkpoint = (
            Path(args.checkpoint) if args.checkpoint else save_checkpoint(EFM.build(EFMConfig()), Path(tmp) / "tiny")
        )
        result = soak(checkpoint, args.robots, args.minutes, args.max_steps, args.threshold, Path(tmp))
    machine = {"cores": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    print(json.dumps({"benchmark": "soak", "machine": machine, **result}, indent=2))


if __name__ == "__main__":
    main()
