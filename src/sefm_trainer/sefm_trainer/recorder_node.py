"""Recorder node: one robot's topics, one episode bag each, recorded as raw CDR like ``ros2 bag record``.

The bag opens on the ``start`` event (with the latched instruction, and anything that arrived
since the last episode, written first) and is committed ``end_grace_s`` after the ``end`` event,
so frames and commands still in flight land too; on a loaded machine the frame after the last
action can be later still, so a bag that lacks it waits up to ``end_wait_s`` more. A bag is
committed only when it is whole by the reader's own rule (``bag_reader.acted_frames``), so no
half-written episode ever lands. Messages go to every open bag: the next episode may start
within the grace period, and the reader ignores what is past an episode's last action.
"""

from __future__ import annotations

import time
from collections import deque

from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, Int32MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeMeta, EpisodeStart
from sefm_interfaces.ros_common import LATCHED_QOS, RECORD_IMAGE_QOS, RECORD_QOS, declare_params, read_event, run

from .bag_reader import acted_frames, nearest_parts
from .bag_writer import EpisodeWriter, episode_bag_name, header_stamp_ns
from .node_params import RecorderParams


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.params = p = declare_params(self, RecorderParams)
        self.namespace = self.get_namespace()
        self.writer: EpisodeWriter | None = None  # the current episode's
        self.instruction_raw: bytes | None = None
        self.committed = 0
        self.pending: dict = {}  # grace timer -> (writer, metadata, end stamp, give-up time)
        self.stamps: dict[EpisodeWriter, dict[str, set[int]]] = {}  # header stamps per checked topic
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
        self.state_topic = ifc.EFFECTOR_POSE if p.command_type == "twist" else ifc.JOINT_STATES
        self.checked = {*(ifc.camera_topic(c) for c in p.cameras), self.state_topic, ifc.COMMAND}
        for topic, msg_type, type_name, qos in topics:
            self.create_subscription(msg_type, topic, self._recorder(topic, type_name), qos, raw=True)
        self.create_subscription(String, ifc.INSTRUCTION, self.on_instruction, LATCHED_QOS, raw=True)
        self.create_subscription(String, ifc.EVENTS, self.on_event, RECORD_QOS, raw=True)

    def _recorder(self, topic: str, type_name: str):
        def record(raw: bytes) -> None:
            now = self.get_clock().now().nanoseconds
            stamp = header_stamp_ns(raw) if topic in self.checked else None
            for writer in self.open_writers():
                writer.write_raw(topic, type_name, now, raw)
                if stamp is not None:
                    self.stamps[writer][topic].add(stamp)
            if self.writer is None:
                self.between.append((topic, type_name, now, raw))

        return record

    def on_instruction(self, raw: bytes) -> None:
        self.instruction_raw = raw
        if self.writer is not None:
            self.writer.write_raw(ifc.INSTRUCTION, "std_msgs/msg/String", self.get_clock().now().nanoseconds, raw)

    def on_event(self, raw: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        event = read_event(self, deserialize_message(raw, String).data)
        if isinstance(event, EpisodeStart):
            if self.writer is not None:  # its manager restarted mid-episode: that episode never ends
                self.get_logger().warning("a new episode started before the last one ended; dropping the last one")
                self.discard(self.writer)
            name = episode_bag_name(self.namespace, now, event.episode_id or 0)
            self.writer = EpisodeWriter(self.params.out_dir, name, self.namespace)
            self.stamps[self.writer] = {t: set() for t in self.checked}
            self.writer.write_raw(ifc.EVENTS, "std_msgs/msg/String", now, raw)
            if self.instruction_raw is not None:
                self.writer.write_raw(ifc.INSTRUCTION, "std_msgs/msg/String", now, self.instruction_raw)
            for topic, type_name, stamp, buffered in self.between:
                self.writer.write_raw(topic, type_name, stamp, buffered)
                if topic in self.checked:
                    self.stamps[self.writer][topic].add(header_stamp_ns(buffered))
            self.between.clear()
        elif isinstance(event, EpisodeEnd) and self.writer is not None:
            self.schedule_commit(self.writer, event.meta, now)
            self.writer = None

    def open_writers(self) -> list[EpisodeWriter]:
        ending = [w for w, *_ in self.pending.values()]
        return ending if self.writer is None or self.writer in ending else [*ending, self.writer]

    def schedule_commit(self, writer: EpisodeWriter, meta: EpisodeMeta, end_ns: int) -> None:
        """Keep recording for the grace period, then commit once the bag is whole."""

        def due() -> None:
            self.complete(timer)

        grace = max(self.params.end_grace_s, 0.01)
        timer = self.create_timer(grace, due)  # fires every grace period until the bag is whole or given up
        self.pending[timer] = (writer, meta, end_ns, time.monotonic() + grace + self.params.end_wait_s)

    def gap(self, writer: EpisodeWriter, meta: EpisodeMeta) -> str | None:
        """What keeps the bag from being a whole episode of ``meta.length`` steps, if anything."""
        if meta.length == 0:
            return "it has no step"  # paused or aborted before its first action
        stamps = self.stamps[writer]
        primary = sorted(stamps[ifc.camera_topic(self.params.cameras[0])])
        try:
            # Commands published before DDS matched this recorder (a graph's first moments) are lost.
            acted = sorted(acted_frames(primary, sorted(stamps[ifc.COMMAND]), meta.length))
        except ValueError as err:
            return str(err)
        at, slop = [primary[k] for k in [*acted, acted[-1] + 1]], round(self.params.sync_slop_s * 1e9)
        # A frame is only whole with its state, where the robot publishes one (a rig may not).
        state = [self.state_topic] if stamps[self.state_topic] or self.state_topic == ifc.JOINT_STATES else []
        for topic in [*(ifc.camera_topic(c) for c in self.params.cameras[1:]), *state]:
            if len(nearest_parts(dict.fromkeys(stamps[topic]), at, slop)) < len(at):
                return f"{topic} lacks a frame of the episode"
        return None

    def complete(self, timer, final: bool = False) -> None:
        writer, meta, end_ns, give_up = self.pending[timer]
        gap = self.gap(writer, meta)
        if gap is not None and not final and meta.length > 0 and time.monotonic() < give_up:
            return  # the frame after the last action may still be on its way
        del self.pending[timer]
        timer.cancel()
        self.destroy_timer(timer)
        if gap is not None:  # not training data, so not saved as an episode
            self.discard(writer)
            self.get_logger().warning(f"dropped an episode of {meta.length} steps: {gap}")
            return
        if self.params.state_joints:  # the bag keeps /joint_states as sent; the reader picks these
            meta.extra["state_joints"] = list(self.params.state_joints)
        if self.params.sync_slop_s:  # and gathers each frame's parts as the policy did
            meta.extra["sync_slop_s"] = self.params.sync_slop_s
        path = writer.commit(meta, end_ns)
        del self.stamps[writer]
        self.committed += 1
        detected = meta.extra.get("detected_success")
        self.get_logger().info(f"wrote {path} ({meta.length} steps, detected success {detected})")

    def discard(self, writer: EpisodeWriter) -> None:
        writer.abort()
        self.stamps.pop(writer, None)

    def flush(self) -> None:
        """Commit the whole episodes still in their grace period (at shutdown)."""
        for timer in list(self.pending):
            self.complete(timer, final=True)

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.discard(self.writer)  # an episode without an end event is incomplete: never committed
            self.writer = None


def main(args=None) -> None:
    run(RecorderNode, args)


if __name__ == "__main__":
    main()
