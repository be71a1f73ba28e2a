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

from sefm_policy.config import parse_config

from .bringup import Bringup
from .graph import GraphConfig

# Domains 120..201 (valid on Linux), two apart per process so parallel runs rarely collide.
_domains = itertools.count(120 + os.getpid() % 40 * 2)


class GraphFailure(RuntimeError):
    pass


def fresh_domain() -> int:
    return next(_domains)


def graph(nodes: dict, robots: int = 1) -> GraphConfig:
    return parse_config({"fleet": {"robots": robots}, "nodes": nodes}, GraphConfig)


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
    """Spin the probe until ``condition()``; fail with the dead nodes' logs if one exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        logs = bringup.dead_logs()
        if logs:
            raise GraphFailure(f"node(s) died while waiting for {what}: {logs}")
        if condition():
            return
    raise GraphFailure(f"timed out after {timeout} s waiting for {what}")


def log_text(bringup: Bringup, name: str) -> str:
    return "\n".join(bringup.log_path(s).read_text() for s in bringup.specs if s.name == name)
