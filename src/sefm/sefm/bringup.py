"""``sefm bringup``: start the graph's nodes as processes (pip installs have no ``ros2 launch``),
supervise them, and shut every one down cleanly on Ctrl-C, on a node's death (unless the graph
says ``fleet.respawn``: then the dead node is restarted, as launch's ``respawn`` does) or at a
deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from .graph import GraphConfig, NodeSpec, node_specs


def ros_environment(config: GraphConfig, domain_id: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    if not config.fleet.multi_host:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # docs/design.md: nothing leaves loopback
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def command(spec: NodeSpec, params_file: Path) -> list[str]:
    """A server names its own nodes in its robots' namespaces: it gets no name or namespace remap."""
    names = () if spec.serves else ("-r", f"__ns:={spec.namespace}", "-r", f"__node:={spec.name}")
    return [
        sys.executable,
        "-m",
        spec.module,
        *spec.arguments,
        "--ros-args",
        *names,
        "--params-file",
        str(params_file),
        *(arg for old, new in spec.remaps for arg in ("-r", f"{old}:={new}")),
    ]


def write_params(spec: NodeSpec, folder: Path) -> Path:
    """A server's parameters go to every node of its process (``/**``)."""
    path = folder / f"{log_stem(spec)}.yaml"
    key = "/**" if spec.serves else spec.fqn
    path.write_text(yaml.safe_dump({key: {"ros__parameters": spec.parameters}}))
    return path


def log_stem(spec: NodeSpec) -> str:
    return "_".join(part for part in (spec.namespace.strip("/").replace("/", "_"), spec.name) if part)


@contextlib.contextmanager
def _interrupted_by(*signals: int):
    """Raise KeyboardInterrupt on these signals for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Bringup:
    def __init__(
        self,
        config: GraphConfig,
        base_dir: str | Path = ".",
        log_dir: str | Path | None = None,
        domain_id: int | None = None,
    ) -> None:
        self.config = config
        self.specs = node_specs(config, base_dir)
        if not self.specs:
            raise ValueError("the graph starts no nodes: list some under 'nodes'")
        self.env = ros_environment(config, domain_id)
        self._tmp = tempfile.TemporaryDirectory(prefix="sefm-bringup-")
        self.log_dir = Path(log_dir) if log_dir else Path(self._tmp.name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[tuple[NodeSpec, subprocess.Popen]] = []
        self.respawns = 0
        self._died_at: dict[int, float] = {}  # index into procs -> when its death was seen

    def start(self) -> None:
        self.procs = [(spec, self._launch(spec, "w")) for spec in self.specs]

    def _launch(self, spec: NodeSpec, mode: str) -> subprocess.Popen:
        return subprocess.Popen(
            command(spec, write_params(spec, Path(self._tmp.name))),
            env=self.env,
            stdout=self.log_path(spec).open(mode),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop the nodes in order
        )

    def respawn_dead(self) -> list[NodeSpec]:
        """With ``fleet.respawn``: restart each node dead for ``respawn_delay_s``, its log
        appended to; returns those restarted now."""
        if not self.config.fleet.respawn:
            return []
        restarted, now = [], time.monotonic()
        for i, (spec, proc) in enumerate(self.procs):
            if proc.poll() is None:
                continue
            since = self._died_at.setdefault(i, now)
            if now - since >= self.config.fleet.respawn_delay_s:
                with self.log_path(spec).open("a") as log:
                    log.write(f"\nsefm bringup: {spec.fqn} exited with {proc.returncode}; respawning\n")
                self.procs[i] = (spec, self._launch(spec, "a"))
                del self._died_at[i]
                self.respawns += 1
                restarted.append(spec)
        return restarted

    def log_path(self, spec: NodeSpec) -> Path:
        return self.log_dir / f"{log_stem(spec)}.log"

    def dead(self) -> list[tuple[NodeSpec, int]]:
        """Nodes that exited and will not be restarted."""
        if self.config.fleet.respawn:
            return []
        return [(spec, p.returncode) for spec, p in self.procs if p.poll() is not None]

    def dead_logs(self, chars: int = 1500) -> dict[str, str]:
        """The log tails of the nodes that have exited, by name: what to show when the graph breaks."""
        return {spec.fqn: self.log_path(spec).read_text(errors="replace")[-chars:] for spec, _ in self.dead()}

    def supervise(self, duration: float | None = None, on_tick=None) -> int:
        """Run until Ctrl-C or SIGTERM, a node exits, or ``duration`` seconds pass; 0 unless a node
        died. Both signals stop the graph even where the shell started us with SIGINT ignored (a
        background job) or a service manager stops us with SIGTERM: the nodes run in sessions of
        their own, so dying without ``stop`` would orphan them."""
        deadline = None if duration is None else time.monotonic() + duration
        with _interrupted_by(signal.SIGINT, signal.SIGTERM):
            return self._supervise(deadline, on_tick)

    def _supervise(self, deadline: float | None, on_tick) -> int:
        try:
            while deadline is None or time.monotonic() < deadline:
                for spec in self.respawn_dead():
                    print(f"sefm bringup: {spec.fqn} died; respawned it", file=sys.stderr)
                gone = self.dead()
                if gone:
                    for spec, code in gone:
                        tail = self.log_path(spec).read_text(errors="replace").splitlines()[-8:]
                        print(f"sefm bringup: {spec.fqn} exited with {code}:", *tail, sep="\n  ", file=sys.stderr)
                    return 1
                if on_tick is not None and on_tick():
                    return 0
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("sefm bringup: stopping", file=sys.stderr)
        return 0

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT every node (rclpy shuts down cleanly), then SIGKILL whatever is left."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
        end = time.monotonic() + timeout
        for _, proc in self.procs:
            try:
                proc.wait(max(end - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._tmp.cleanup()

    def __enter__(self) -> Bringup:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
