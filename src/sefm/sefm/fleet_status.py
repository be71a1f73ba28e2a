"""``sefm fleet status``: a live table of every robot on the ROS domain."""

from __future__ import annotations

import contextlib
import re
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rich.console import Console
from rich.live import Live
from std_msgs.msg import Float32, Header, Int32MultiArray, String

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import CheckpointInfo, ProtocolError, decode, decode_event
from sefm_interfaces.ros_common import LATCHED_QOS, RELIABLE_QOS

from .fleet_table import FleetTable

ROBOT = re.compile(rf"^(?P<ns>/.+)/{ifc.EVENTS}$")


class FleetStatusNode(Node):
    def __init__(self, table: FleetTable) -> None:
        super().__init__("fleet_status")
        self.table = table
        self.known: set[str] = set()
        self.create_subscription(String, ifc.CHECKPOINT, self.on_checkpoint, LATCHED_QOS)
        self.create_timer(1.0, self.discover)
        self.discover()

    def discover(self) -> None:
        for topic, _ in self.get_topic_names_and_types():
            m = ROBOT.match(topic)
            if m and m["ns"] not in self.known:
                self.watch(m["ns"])

    def watch(self, ns: str) -> None:
        self.known.add(ns)
        t = self.table
        t.row(ns)
        handlers = [
            (String, ifc.EVENTS, lambda m: self.on_event(ns, m)),
            (Float32, ifc.STEPS_TO_GO, lambda m: t.on_steps_to_go(ns, m.data)),
            (Header, ifc.SUCCESS, lambda m: t.on_success(ns, ifc.VERDICTS.get(m.frame_id))),
            (Int32MultiArray, ifc.ACTION_TOKENS, lambda _m: t.on_action(ns)),
        ]
        for msg_type, topic, handler in handlers:
            self.create_subscription(msg_type, f"{ns}/{topic}", handler, RELIABLE_QOS)

    def on_event(self, ns: str, msg: String) -> None:
        with contextlib.suppress(ProtocolError):  # the table shows what it can read
            self.table.on_event(ns, decode_event(msg.data))

    def on_checkpoint(self, msg: String) -> None:
        try:
            self.table.policy_version = str(decode(msg.data, CheckpointInfo).version)
        except ProtocolError:
            self.table.policy_version = "?"


def fleet_status(duration: float | None = None, refresh_hz: float = 2.0) -> FleetTable:
    """Show the table live until Ctrl-C, or for ``duration`` seconds and then print it once."""
    rclpy.init()
    table = FleetTable()
    node = FleetStatusNode(table)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    console = Console()
    try:
        if duration is not None:
            end = time.monotonic() + duration
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
            console.print(table.render())
        else:
            with Live(table.render(), console=console, refresh_per_second=refresh_hz) as live:
                while True:
                    executor.spin_once(timeout_sec=1.0 / refresh_hz)
                    live.update(table.render())
    except KeyboardInterrupt:
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return table
