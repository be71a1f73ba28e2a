"""What every sefm node shares: QoS, typed parameters, image conversion, a clean main loop."""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import rclpy
from pydantic import BaseModel
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header

from . import topics as ifc
from .episode_protocol import EpisodeEnd, EpisodeStart, PauseChange, ProtocolError, decode_event
from .frame_sync import FrameSync, Snapshot, joint_positions
from .image_codec import ImageError, image_to_array
from .typed_config import parse_config

SENSOR_QOS = qos_profile_sensor_data
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Simulated cameras publish reliably (nothing is lost in lockstep practice); sensor-QoS
# subscribers (newest frame wins) still match them, as they match real camera drivers.
SIM_CAMERA_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# The recorder keeps up to this many unread messages per topic: a busy disk or CPU must not
# drop data. Images best-effort so it also matches real drivers' sensor QoS publishers.
RECORD_IMAGE_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)
RECORD_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
BAD_IMAGE_LOG_PERIOD_S = 5.0  # one warning per camera and kind of fault in this time
SERVER_STATS_PERIOD_S = 10.0  # a server logs its batch sizes this often


def declare_params(node: Node, model: type[BaseModel]):
    """Declare one ROS parameter per field of ``model`` (typed by its default) and return the
    validated values; a wrong value fails naming the parameter."""
    values = {}
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default == []:  # an empty list says nothing of its type; ours are lists of names
            node.declare_parameter(name, Parameter.Type.STRING_ARRAY)
            given = node.get_parameter_or(name, Parameter(name, value=[]))
            values[name] = list(given.value or [])
            continue
        node.declare_parameter(name, default)
        values[name] = node.get_parameter(name).value
    return parse_config(values, model, f"parameters of node {node.get_fully_qualified_name()}")


def read_event(node: Node, text: str) -> EpisodeStart | EpisodeEnd | PauseChange | None:
    """An ``episode/events`` message, or None (logged) when it does not parse: a stranger's message
    on the topic must not take a node down."""
    try:
        return decode_event(text)
    except ProtocolError as err:
        node.get_logger().error(f"ignoring an event: {err}", throttle_duration_sec=BAD_IMAGE_LOG_PERIOD_S)
        return None


def stamp_ns(msg) -> int:
    """A message's header stamp in ns; a bare ``std_msgs/Header`` (a verdict) is read itself."""
    stamp = msg.stamp if hasattr(msg, "stamp") else msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def set_stamp(msg, ns: int) -> None:
    """Stamp a message's header; a bare ``std_msgs/Header`` is stamped itself."""
    stamp = msg.stamp if hasattr(msg, "stamp") else msg.header.stamp
    stamp.sec, stamp.nanosec = divmod(int(ns), 1_000_000_000)


def stamped_verdict(success: bool, ns: int) -> Header:
    """A verdict on the frame stamped ``ns`` (``topics.SUCCESS``, ``topics.SIM_SUCCESS``)."""
    msg = Header(frame_id=next(name for name, value in ifc.VERDICTS.items() if value == bool(success)))
    set_stamp(msg, ns)
    return msg


def array_to_image(rgb: np.ndarray, stamp: int, frame_id: str) -> Image:
    h, w, _ = rgb.shape
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w)
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    msg.header.frame_id = frame_id
    set_stamp(msg, stamp)
    return msg


def subscribe_moments(
    node: Node, sync: FrameSync, on_snapshot: Callable[[Snapshot], None], state_joints: Sequence[str] = ()
) -> None:
    """Subscribe to the sync's cameras (and joint states where it needs them, ``state_joints`` of
    them by name when given: ``frame_sync.joint_positions``); ``on_snapshot`` gets
    each moment once all its parts are in. An unreadable image is logged (rate-limited, naming the
    topic and the fault) and skipped: one bad message from a driver must not take a robot down."""

    def deliver(snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            on_snapshot(snapshot)

    last_said: dict[tuple[str, str], float] = {}

    def on_image(msg: Image, camera: str) -> None:
        try:
            frame = image_to_array(msg)
        except ImageError as err:
            now, key = time.monotonic(), (camera, err.kind)
            if now - last_said.get(key, -BAD_IMAGE_LOG_PERIOD_S) >= BAD_IMAGE_LOG_PERIOD_S:
                last_said[key] = now
                topic = node.resolve_topic_name(ifc.camera_topic(camera))
                node.get_logger().warning(f"{topic}: skipping a frame: {err}")
            return
        deliver(sync.add_image(camera, stamp_ns(msg), frame))

    for camera in sync.cameras:
        node.create_subscription(
            Image, ifc.camera_topic(camera), lambda msg, cam=camera: on_image(msg, cam), SENSOR_QOS
        )

    def on_state(msg: JointState) -> None:
        try:
            state = joint_positions(msg.name, msg.position, state_joints)
        except ValueError as err:
            node.get_logger().warning(f"skipping a joint state: {err}", throttle_duration_sec=BAD_IMAGE_LOG_PERIOD_S)
            return
        deliver(sync.add_state(stamp_ns(msg), state))

    if sync.needs_state:
        node.create_subscription(JointState, ifc.JOINT_STATES, on_state, SENSOR_QOS)


def run(make_node: Callable[[], Node], args=None) -> None:
    """Spin one node until Ctrl-C/SIGTERM, then tear it down (SingleThreadedExecutor: docs/design.md says why)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init(args=args)  # rclpy turns SIGINT and SIGTERM into ExternalShutdownException in spin
    node = make_node()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def server_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line of a process serving several robots' nodes (``--namespaces``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--namespaces", nargs="+", required=True, help="the robots served, e.g. /robot_0 /robot_1")
    return parser


def server_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if len(set(args.namespaces)) != len(args.namespaces):
        parser.error(f"--namespaces repeats a robot: {args.namespaces}")
    return args


def batches_line(sizes: Counter, robots: int, verb: str) -> str | None:
    """How a server's passes went: "frames of 2 robots answered in batches of 1: 40, 2: 165"."""
    if not sizes:
        return None
    return f"frames of {robots} robots {verb} in batches of " + ", ".join(f"{n}: {sizes[n]}" for n in sorted(sizes))


def serve(
    server: Node,
    robots: Sequence[Node],
    batches: tuple[Counter, str],
    step: Callable[[SingleThreadedExecutor], None] | None = None,
    close: Callable[[], None] | None = None,
) -> None:
    """Spin a server and the robots' nodes it hosts until Ctrl-C/SIGTERM (``step``: one turn of a
    loop of its own), logging its ``batches`` (sizes, verb) now and then; then tear it all down."""
    sizes, verb = batches

    def stats() -> None:
        line = batches_line(sizes, len(robots), verb)
        if line:
            server.get_logger().info(line)

    server.create_timer(SERVER_STATS_PERIOD_S, stats)
    executor = SingleThreadedExecutor()
    for node in (server, *robots):
        executor.add_node(node)
    try:
        if step is None:
            executor.spin()
        else:
            while rclpy.ok():
                step(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if close is not None:
            close()
        stats()
        executor.shutdown()
        for node in (*robots, server):
            node.destroy_node()
        rclpy.try_shutdown()
