"""Recorder node: one robot's topics, one episode bag each, recorded as raw CDR like ``ros2 bag record``.

The bag opens on the ``start`` event (with the latched instruction, and anything that arrived
since the last episode, written first) and is committed ``end_grace_s`` after the ``end`` event,
so frames and commands still in flight land too. Messages go to every open bag: the next
episode may start within the grace period, and the reader ignores what is past an
episode's last action.
"""

from __future__ import annotations

import json
import re
from collections import deque

from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, Int32MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from sefm_policy import interfaces as ifc
from sefm_policy.ros_common import LATCHED_QOS, RECORD_IMAGE_QOS, RECORD_QOS, declare_params, run

from .bag_writer import EpisodeWriter
from .episode import EpisodeMeta
from .node_params import RecorderParams


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.params = p = declare_params(self, RecorderParams)
        self.namespace = self.get_namespace()
        self.writer: EpisodeWriter | None = None  # the current episode's
        self.instruction_raw: bytes | None = None
        self.committed = 0
        self.pending: dict = {}  # grace timer -> (writer, metadata, end stamp)
        # Messages between episodes: a new episode's first frame may arrive before its start event.
        self.between: deque = deque(maxlen=50)
        topics = [(ifc.camera_topic(c), Image, "sensor_msgs/msg/Image", RECORD_IMAGE_QOS) for c in p.cameras]
        topics += [
            (ifc.EFFECTOR_POSE, PoseStamped, "geometry_msgs/msg/PoseStamped", RECORD_QOS),
            (ifc.ACTION_TOKENS, Int32MultiArray, "std_msgs/msg/Int32MultiArray", RECORD_QOS),
            (ifc.JOINT_STATES, JointState, "sensor_msgs/msg/JointState", RECORD_QOS),
            (ifc.SIM_SUCCESS, Header, "std_msgs/msg/Header", RECORD_QOS),
            {"twist": (ifc.COMMAND, TwistStamped, "geometry_msgs/msg/TwistStamped", RECORD_QOS),
             "joint_trajectory": (ifc.COMMAND, JointTrajectory, "trajectory_msgs/msg/JointTrajectory", RECORD_QOS),
             }[p.command_type],
        ]  # fmt: skip
        for topic, msg_type, type_name, qos in topics:
            self.create_subscription(msg_type, topic, self._recorder(topic, type_name), qos, raw=True)
        self.create_subscription(String, ifc.INSTRUCTION, self.on_instruction, LATCHED_QOS, raw=True)
        self.create_subscription(String, ifc.EVENTS, self.on_event, RECORD_QOS, raw=True)

    def _recorder(self, topic: str, type_name: str):
        def record(raw: bytes) -> None:
            now = self.get_clock().now().nanoseconds
            for writer in self.open_writers():
                writer.write_raw(topic, type_name, now, raw)
            if self.writer is None:
                self.between.append((topic, type_name, now, raw))

        return record

    def on_instruction(self, raw: bytes) -> None:
        self.instruction_raw = raw
        if self.writer is not None:
            self.writer.write_raw(ifc.INSTRUCTION, "std_msgs/msg/String", self.get_clock().now().nanoseconds, raw)

    def on_event(self, raw: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        event = json.loads(deserialize_message(raw, String).data)
        kind = event.get("event")
        if kind == "start":
            name = f"{self.namespace.strip('/').replace('/', '_') or 'robot'}_{now}_{event.get('episode_id', 0):05d}"
            self.writer = EpisodeWriter(self.params.out_dir, re.sub(r"[^\w.-]", "_", name), self.namespace)
            self.writer.write_raw(ifc.EVENTS, "std_msgs/msg/String", now, raw)
            if self.instruction_raw is not None:
                self.writer.write_raw(ifc.INSTRUCTION, "std_msgs/msg/String", now, self.instruction_raw)
            for topic, type_name, stamp, buffered in self.between:
                self.writer.write_raw(topic, type_name, stamp, buffered)
            self.between.clear()
        elif kind == "end" and self.writer is not None:
            self.schedule_commit(self.writer, EpisodeMeta(**event["metadata"]), now)
            self.writer = None

    def open_writers(self) -> list[EpisodeWriter]:
        ending = [w for w, _, _ in self.pending.values()]
        return ending if self.writer is None or self.writer in ending else [*ending, self.writer]

    def schedule_commit(self, writer: EpisodeWriter, meta: EpisodeMeta, end_ns: int) -> None:
        """Keep recording for the grace period, then commit."""

        def due() -> None:
            self.complete(timer)

        timer = self.create_timer(max(self.params.end_grace_s, 0.01), due)
        self.pending[timer] = (writer, meta, end_ns)

    def complete(self, timer) -> None:
        writer, meta, end_ns = self.pending.pop(timer)
        timer.cancel()
        self.destroy_timer(timer)
        commands = writer.counts.get(ifc.COMMAND, 0)
        frames = min(writer.counts.get(ifc.camera_topic(c), 0) for c in self.params.cameras)
        state = ifc.EFFECTOR_POSE if self.params.command_type == "twist" else ifc.JOINT_STATES
        frames = min(frames, writer.counts.get(state, 0))  # a frame is only whole with its state
        if meta.length == 0 or commands < meta.length or frames <= meta.length:
            # Commands published before DDS matched this recorder (a graph's first moments) are lost,
            # an episode paused or aborted before its first step has none, and one committed at
            # shutdown may lack the frame after its last action: none of these is training data, so
            # none is saved as an episode.
            writer.abort()
            self.get_logger().warning(
                f"dropped an episode of {meta.length} steps: recorded {commands} commands, {frames} frames"
            )
            return
        path = writer.commit(meta, end_ns)
        self.committed += 1
        detected = meta.extra.get("detected_success")
        self.get_logger().info(f"wrote {path} ({meta.length} steps, detected success {detected})")

    def flush(self) -> None:
        """Commit episodes still in their grace period (at shutdown)."""
        for timer in list(self.pending):
            self.complete(timer)

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.abort()  # an episode without an end event is incomplete: never committed
            self.writer = None


def main(args=None) -> None:
    run(RecorderNode, args)


if __name__ == "__main__":
    main()
