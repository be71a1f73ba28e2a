"""Write one episode as a rosbag2 directory (MCAP storage, format version 9).

The bag is written inside a hidden ``.<name>.partial-*`` directory and renamed to ``<name>``
only when complete, so a crash never leaves a partial episode that looks complete; readers
skip hidden entries. A ``SHA256SUMS`` file beside the MCAP (``sha256sum -c`` reads it) lets the
reader refuse a bag whose bytes changed after recording: rosbags writes MCAP chunks without CRCs.
Messages go in either as rosbags message objects or as raw CDR bytes (what a ``raw=True`` rclpy
subscription delivers, as ``ros2 bag record`` stores it).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import struct
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeMeta, Message, encode
from sefm_interfaces.topics import (
    ACTION_TOKENS,
    COMMAND,
    EFFECTOR_POSE,
    EVENTS,
    INSTRUCTION,
    JOINT_STATES,
    SIM_OBJECTS,
    camera_topic,
)
from sefm_policy.checkpoint import file_sha256

from .episode import METADATA_KEY

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
T = TYPESTORE.types
CHECKSUMS = "SHA256SUMS"


def write_checksums(bag: Path) -> None:
    """``sha256sum``-format digests of a closed bag's storage files; not of metadata.yaml, which
    ``ros2 bag reindex`` may rewrite and which the reader does not trust for the data anyway."""
    skip = {CHECKSUMS, "metadata.yaml"}
    lines = [f"{file_sha256(f)}  {f.name}\n" for f in sorted(bag.iterdir()) if f.is_file() and f.name not in skip]
    (bag / CHECKSUMS).write_text("".join(lines))


def ros_time(ns: int):
    return T["builtin_interfaces/msg/Time"](sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header(ns: int, frame_id: str):
    return T["std_msgs/msg/Header"](stamp=ros_time(ns), frame_id=frame_id)


def object_markers(stamp_ns: int, positions: dict[str, np.ndarray]):
    """A rosbags MarkerArray of the objects at ``positions`` (board metres), one cylinder each."""
    M = T["visualization_msgs/msg/Marker"]
    Pose, Point, Quat = T["geometry_msgs/msg/Pose"], T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Quaternion"]
    Vec, Color = T["geometry_msgs/msg/Vector3"], T["std_msgs/msg/ColorRGBA"]
    Duration = T["builtin_interfaces/msg/Duration"]
    markers = []
    for i, (name, xy) in enumerate(positions.items()):
        pose = Pose(position=Point(x=float(xy[0]), y=float(xy[1]), z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0))
        markers.append(
            M(
                header=header(stamp_ns, "board"), ns=name, id=i, type=M.CYLINDER, action=M.ADD, pose=pose,
                scale=Vec(x=0.044, y=0.044, z=0.01), color=Color(r=1.0, g=1.0, b=1.0, a=0.5),
                lifetime=Duration(sec=0, nanosec=0), frame_locked=False, points=[], colors=[],
                texture_resource="", texture=T["sensor_msgs/msg/CompressedImage"](
                    header=header(0, ""), format="", data=np.zeros(0, np.uint8)
                ),
                uv_coordinates=[], text="", mesh_resource="",
                mesh_file=T["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
                mesh_use_embedded_materials=False,
            )
        )  # fmt: skip
    return T["visualization_msgs/msg/MarkerArray"](markers=markers)


def header_stamp_ns(cdr: bytes | memoryview) -> int:
    """The header stamp of a serialised stamped message (a Header is its first field), read
    without deserialising the rest, e.g. an image."""
    order = "<" if cdr[1] & 1 else ">"  # the CDR encapsulation: little- or big-endian
    sec, nanosec = struct.unpack_from(order + "iI", cdr, 4)
    return sec * 1_000_000_000 + nanosec


def episode_bag_name(namespace: str, start_ns: int, episode_id: int) -> str:
    """``<robot>_<start ns>_<episode id>``: bags sort by when the recorder saw each start, and a
    restarted manager's reused ids never collide."""
    robot = namespace.strip("/").replace("/", "_") or "robot"
    return re.sub(r"[^\w.-]", "_", f"{robot}_{start_ns}_{episode_id:05d}")


def recorded_start_ns(bag: Path) -> int:
    """When the recorder saw the episode start, read back from its bag's name."""
    return int(Path(bag).name.rsplit("_", 2)[-2])


class EpisodeWriter:
    def __init__(self, out_dir: str | Path, name: str, namespace: str = "/robot_0") -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if name.startswith(".") or "/" in name:
            raise ValueError(f"episode name {name!r} must be a plain, non-hidden file name")
        self.final = out_dir / name
        if self.final.exists():
            raise FileExistsError(f"episode {self.final} already exists")
        self.namespace = "/" + namespace.strip("/")
        self._staging = out_dir / f".{name}.partial-{uuid.uuid4().hex[:8]}"
        self._staging.mkdir()
        self._writer = Writer(self._staging / name, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}  # messages written per topic (relative to the namespace)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    # ----- raw and typed writes ---------------------------------------------------------

    def _connection(self, topic: str, msgtype: str):
        full = f"{self.namespace}/{topic}"
        conn = self._connections.get(full)
        if conn is None:
            conn = self._writer.add_connection(full, msgtype, typestore=TYPESTORE)
            self._connections[full] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {full} already carries {conn.msgtype}, not {msgtype}")
        return conn

    def write_raw(self, topic: str, msgtype: str, time_ns: int, cdr: bytes | memoryview) -> None:
        """A serialized message as received from DDS (``topic`` relative to the namespace)."""
        self._writer.write(self._connection(topic, msgtype), int(time_ns), cdr)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write(self, topic: str, msg, time_ns: int) -> None:
        msgtype = msg.__msgtype__
        self.write_raw(topic, msgtype, time_ns, TYPESTORE.serialize_cdr(msg, msgtype))

    # ----- the episode topics -----------------------------------------------------------

    def image(self, camera: str, stamp_ns: int, rgb: np.ndarray) -> None:
        h, w, _ = rgb.shape
        msg = T["sensor_msgs/msg/Image"](
            header=header(stamp_ns, f"camera_{camera}"),
            height=h,
            width=w,
            encoding="rgb8",
            is_bigendian=0,
            step=3 * w,
            data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1),
        )
        self.write(camera_topic(camera), msg, stamp_ns)

    def instruction(self, stamp_ns: int, text: str) -> None:
        self.write(INSTRUCTION, T["std_msgs/msg/String"](data=text), stamp_ns)

    def effector_pose(self, stamp_ns: int, xy: np.ndarray, frame_id: str = "board") -> None:
        Pose, Point, Quat = T["geometry_msgs/msg/Pose"], T["geometry_msgs/msg/Point"], T["geometry_msgs/msg/Quaternion"]
        pose = Pose(position=Point(x=float(xy[0]), y=float(xy[1]), z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0))
        self.write(
            EFFECTOR_POSE, T["geometry_msgs/msg/PoseStamped"](header=header(stamp_ns, frame_id), pose=pose), stamp_ns
        )

    def objects(self, stamp_ns: int, positions: dict[str, np.ndarray]) -> None:
        """Where each object on the board is at this frame (``interfaces.SIM_OBJECTS``)."""
        self.write(SIM_OBJECTS, object_markers(stamp_ns, positions), stamp_ns)

    def action_tokens(self, stamp_ns: int, tokens: np.ndarray) -> None:
        Layout = T["std_msgs/msg/MultiArrayLayout"]
        msg = T["std_msgs/msg/Int32MultiArray"](
            layout=Layout(dim=[], data_offset=0), data=np.asarray(tokens, dtype=np.int32).reshape(-1)
        )
        self.write(ACTION_TOKENS, msg, stamp_ns)

    def planar_command(self, stamp_ns: int, obs_stamp_ns: int, delta: np.ndarray, period_s: float) -> None:
        """The delta as a TwistStamped velocity (MoveIt Servo style); the header carries the stamp of
        the observation it answers, which is how the reader aligns actions with frames."""
        Vec, Twist = T["geometry_msgs/msg/Vector3"], T["geometry_msgs/msg/Twist"]
        v = np.asarray(delta, dtype=np.float64) / period_s
        twist = Twist(linear=Vec(x=float(v[0]), y=float(v[1]), z=0.0), angular=Vec(x=0.0, y=0.0, z=0.0))
        msg = T["geometry_msgs/msg/TwistStamped"](header=header(obs_stamp_ns, "board"), twist=twist)
        self.write(COMMAND, msg, stamp_ns)

    def joint_state(self, stamp_ns: int, names, positions: np.ndarray) -> None:
        msg = T["sensor_msgs/msg/JointState"](
            header=header(stamp_ns, "base"),
            name=list(names),
            position=np.asarray(positions, dtype=np.float64).reshape(-1),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
        self.write(JOINT_STATES, msg, stamp_ns)

    def joint_command(self, stamp_ns: int, obs_stamp_ns: int, names, chunk: np.ndarray, period_s: float) -> None:
        """A chunk of joint-position targets as a JointTrajectory, one point per chunk step (what
        joint_trajectory_controller takes); the header carries the stamp of the answered observation."""
        Point, Duration = T["trajectory_msgs/msg/JointTrajectoryPoint"], T["builtin_interfaces/msg/Duration"]
        empty = np.zeros(0)
        points = []
        for k, q in enumerate(np.asarray(chunk, dtype=np.float64).reshape(-1, len(names)), start=1):
            ns = round(k * period_s * 1e9)
            at = Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
            points.append(Point(positions=q, velocities=empty, accelerations=empty, effort=empty, time_from_start=at))
        msg = T["trajectory_msgs/msg/JointTrajectory"](
            header=header(obs_stamp_ns, "base"), joint_names=list(names), points=points
        )
        self.write(COMMAND, msg, stamp_ns)

    def event(self, stamp_ns: int, event: Message) -> None:
        self.write(EVENTS, T["std_msgs/msg/String"](data=encode(event)), stamp_ns)

    # ----- finishing --------------------------------------------------------------------

    def commit(self, meta: EpisodeMeta, end_ns: int) -> Path:
        """Record the metadata (custom data + an ``end`` event), close and move into place."""
        self.event(end_ns, EpisodeEnd(metadata=asdict(meta)))
        self._writer.set_custom_data(METADATA_KEY, meta.to_json())
        self._writer.close()
        write_checksums(self._staging / self.final.name)
        (self._staging / self.final.name).rename(self.final)
        shutil.rmtree(self._staging)
        return self.final

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the staging copy is deleted either way
            self._writer.close()
        shutil.rmtree(self._staging, ignore_errors=True)
