"""Run a graph with a probe node beside it on a private ROS domain: for tests and benchmarks."""

from __future__ import annotations

import itertools
import os
import time
from contextlib import contextmanager
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from sefm_interfaces.typed_config import parse_config

from .bringup import Bringup
from .graph import GraphConfig

# Domains 120..201 (valid on Linux), two apart per process so parallel runs rarely collide.
_domains = itertools.count(120 + os.getpid() % 40 * 2)


class GraphFailure(RuntimeError):
    pass


def fresh_domain() -> int:
    return next(_domains)


def graph(nodes: dict, robots: int = 1, **fleet) -> GraphConfig:
    """A graph of ``nodes`` per robot; ``fleet`` takes any other FleetConfig keys."""
    return parse_config({"fleet": {"robots": robots, **fleet}, "nodes": nodes}, GraphConfig)


def practice_nodes(checkpoint, out_dir, max_steps: int = 15, threshold: float = 0.0) -> dict:
    """One simulated robot practising in lockstep with ``checkpoint`` as policy and reward model,
    recording to ``out_dir`` (the nodes part of a graph)."""
    return {
        "sim_bridge": {"mode": "lockstep"},
        "recorder": {"out_dir": str(out_dir)},
        "reward": {"checkpoint": str(checkpoint), "success_threshold": threshold},
        "policy": {"checkpoint": str(checkpoint), "actuation_enabled": True},
        "episode_manager": {"max_steps": max_steps},
    }


def bags(folder: Path) -> list[Path]:
    """The episode bags landed in ``folder`` (a recorder writes into hidden folders first)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


@contextmanager
def running(config: GraphConfig, log_dir: str | Path, domain_id: int | None = None):
    """Yields (bringup, probe node, executor); everything is stopped on exit."""
    domain = fresh_domain() if domain_id is None else domain_id
    with Bringup(config, log_dir=log_dir, domain_id=domain) as bringup:
        ctx = Context()
        rclpy.init(context=ctx, domain_id=domain)
        probe = rclpy.create_node("probe", context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(probe)
        try:
            yield bringup, probe, executor
        finally:
            executor.shutdown()
            probe.destroy_node()
            rclpy.shutdown(context=ctx)


def spin_until(executor, bringup: Bringup, condition, timeout: float, what: str) -> None:
    """Spin the probe until ``condition()``; fail with the dead nodes' logs if one exits, and with
    every node's log tail on a timeout (what a red CI run needs to be read)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        bringup.respawn_dead()
        logs = bringup.dead_logs()
        if logs:
            raise GraphFailure(f"node(s) died while waiting for {what}: {logs}")
        if condition():
            return
    tails = {s.fqn: bringup.log_path(s).read_text(errors="replace")[-800:] for s in bringup.specs}
    raise GraphFailure(f"timed out after {timeout} s waiting for {what}; the nodes' logs end: {tails}")


def log_text(bringup: Bringup, name: str) -> str:
    return "\n".join(bringup.log_path(s).read_text() for s in bringup.specs if s.name == name)
