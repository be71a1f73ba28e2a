"""Trainer node: Stage 1 on a folder of bags, or Stage 2 with this graph's robots as the source.

For Stage 2 it is the fleet's control surface (:class:`~sefm_trainer.fleet_source.FleetControl`):
it announces checkpoints on /sefm/policy_checkpoint, waits on every robot's policy/version, and
pauses the robots through episode/pause while it updates. Training runs in a worker thread
so the node keeps spinning.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import CheckpointInfo, PauseReply, ProtocolError, decode, encode
from sefm_interfaces.ros_common import LATCHED_QOS, declare_params, run
from sefm_interfaces.typed_config import load_config

from .fleet_source import FleetSource
from .node_params import TrainerParams
from .sft import SFTConfig, train_sft
from .stage2 import Stage2Config, self_improve


class TrainerNode(Node):
    def __init__(self, params: TrainerParams | None = None, context=None, health=None) -> None:
        super().__init__("trainer", context=context)
        self.health = health  # raises if the fleet's processes are gone (see FleetSource)
        self.params = p = params or declare_params(self, TrainerParams)
        self.versions: dict[str, object] = {}
        self.checkpoint_pub = self.create_publisher(String, ifc.CHECKPOINT, LATCHED_QOS)
        self.pause_clients = {}
        for ns in p.robots:
            topic = f"{ns.rstrip('/')}/{ifc.POLICY_VERSION}"
            self.create_subscription(String, topic, lambda msg, ns=ns: self.on_version(ns, msg), LATCHED_QOS)
            self.pause_clients[ns] = self.create_client(SetBool, f"{ns.rstrip('/')}/{ifc.PAUSE}")
        self.result: dict | None = None
        self.error: BaseException | None = None
        self.worker: threading.Thread | None = None

    def start(self) -> None:
        """Train in a worker thread (the node's executor must keep spinning meanwhile)."""
        self.worker = threading.Thread(target=self._train, daemon=True)
        self.worker.start()

    def _train(self) -> None:
        try:
            self.result = self.train()
            self.get_logger().info(f"training finished: {json.dumps(self.result, default=str)[:500]}")
        except BaseException as err:
            self.error = err
            self.get_logger().error(f"training failed: {err!r}")

    def train(self) -> dict:
        p = self.params
        if p.stage == "sft":
            cfg = load_config(p.config, SFTConfig)
            best = train_sft(cfg)
            self.publish_checkpoint(Path(cfg.out) / "best_bc", "stage1")
            return best
        return self.stage2(load_config(p.config, Stage2Config))

    def stage2(self, cfg: Stage2Config, on_checkpoint=None, progress: bool = True) -> dict:
        """Self-improvement with this node's robots practising (call with the node spinning elsewhere)."""
        source = FleetSource(
            self.params.episodes_dir,
            self,
            Path(cfg.out) / "actors",
            timeout_s=self.params.timeout_s,
            health=self.health,
        )
        return self_improve(cfg, source, on_checkpoint=on_checkpoint, progress=progress)

    # ----- FleetControl -----------------------------------------------------------------

    def on_version(self, namespace: str, msg: String) -> None:
        try:
            self.versions[namespace] = decode(msg.data, CheckpointInfo).version
        except ProtocolError:
            self.get_logger().error(f"malformed policy version from {namespace}: {msg.data!r}")

    def publish_checkpoint(self, path: Path, version) -> None:
        self.checkpoint_pub.publish(String(data=encode(CheckpointInfo(path=str(path), version=version))))

    def wait_for_version(self, version: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.versions.get(ns) == version for ns in self.params.robots):
                return
            time.sleep(0.05)
        lagging = {ns: self.versions.get(ns) for ns in self.params.robots if self.versions.get(ns) != version}
        raise TimeoutError(f"policy nodes not at version {version} after {timeout_s} s: {lagging}")

    def set_paused(self, paused: bool, timeout_s: float) -> int:
        futures = {}
        for ns, client in self.pause_clients.items():
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f"{ns}/{ifc.PAUSE} is not available after {timeout_s} s")
            futures[ns] = client.call_async(SetBool.Request(data=paused))
        deadline = time.monotonic() + timeout_s
        while not all(f.done() for f in futures.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ifc.PAUSE} did not answer within {timeout_s} s")
            time.sleep(0.01)
        replies = [decode(f.result().message, PauseReply) for f in futures.values()]
        return sum(reply.aborted_episode is not None for reply in replies)


def main(args=None) -> None:
    def make() -> TrainerNode:
        node = TrainerNode()
        node.start()
        return node

    run(make, args)


if __name__ == "__main__":
    main()
