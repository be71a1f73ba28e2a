"""Rig-shaped recordings, as ``ros2 bag record`` would write them on a real LanguageTable or
Interbotix ALOHA rig: their topic names, a 30 Hz camera, a 50 Hz teleoperation stream. They
stand in for a user's own bags where no rig is at hand (the importer's tests, its benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from .bag_writer import TYPESTORE, header

T = TYPESTORE.types
# Interbotix ALOHA: each vx300s arm reports six joints, the gripper and its two fingers.
ARM_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]
REPORTED_JOINTS = [*ARM_JOINTS, "left_finger", "right_finger"]
ALOHA_CAMERAS = {
    "top": "/cam_high/image_raw",
    "angle": "/cam_low/image_raw",
    "left_wrist": "/cam_left_wrist/image_raw",
    "right_wrist": "/cam_right_wrist/image_raw",
}


@dataclass(frozen=True)
class Teleop:
    """A planar teleoperation session: velocity ``velocity(t)`` in m/s, episodes between marks."""

    episodes: tuple[tuple[float, float], ...] = ((0.5, 3.5), (5.0, 8.0))  # (start, end) seconds
    camera_hz: float = 30.0
    command_hz: float = 50.0
    size: tuple[int, int] = (64, 48)  # (width, height) of the camera's frames

    @staticmethod
    def velocity(t: float) -> np.ndarray:
        return np.array([0.2 * np.sin(t), 0.1 * np.cos(0.5 * t)])

    @property
    def duration(self) -> float:
        return self.episodes[-1][1] + 0.5


def _ns(t) -> int:
    return round(float(t) * 1e9)


def _writer(path: Path, storage: str) -> Writer:
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9 if storage == "mcap" else 8, storage_plugin=plugin)
    writer.open()
    return writer


def _frame(t: float, size: tuple[int, int]) -> np.ndarray:
    """A board with a block that moves, so frames differ in time."""
    w, h = size
    image = np.full((h, w, 3), 200, np.uint8)
    x = int((0.5 + 0.4 * np.sin(t)) * (w - 8))
    image[h // 3 : h // 3 + 8, x : x + 8] = (200, 30, 30)
    return image


def write_language_table_rig(path: str | Path, teleop: Teleop = Teleop(), storage: str = "mcap", drop=()) -> Path:
    """A LanguageTable rig's bag: a compressed camera, MoveIt Servo's TwistStamped input, the
    tool pose, an instruction and a Bool marker around each episode. ``drop``: topics left out."""
    path = Path(path)
    writer = _writer(path, storage)
    topics = {
        "/camera/color/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
        "/servo_node/delta_twist_cmds": "geometry_msgs/msg/TwistStamped",
        "/tool_pose": "geometry_msgs/msg/PoseStamped",
        "/instruction": "std_msgs/msg/String",
        "/episode_marker": "std_msgs/msg/Bool",
    }
    conns = {t: writer.add_connection(t, m, typestore=TYPESTORE) for t, m in topics.items() if t not in drop}
    messages = []  # (ns, topic, message)
    messages.append((_ns(0.1), "/instruction", T["std_msgs/msg/String"](data="push the red block to the left")))
    for start, end in teleop.episodes:
        messages.append((_ns(start), "/episode_marker", T["std_msgs/msg/Bool"](data=True)))
        messages.append((_ns(end), "/episode_marker", T["std_msgs/msg/Bool"](data=False)))
    for t in np.arange(0.0, teleop.duration, 1 / teleop.camera_hz):
        _, jpeg = cv2.imencode(".jpg", _frame(t, teleop.size)[:, :, ::-1])
        msg = T["sensor_msgs/msg/CompressedImage"](
            header=header(_ns(t), "camera"), format="jpeg", data=jpeg.reshape(-1)
        )
        messages.append((_ns(t), "/camera/color/image_raw/compressed", msg))
    Vec = T["geometry_msgs/msg/Vector3"]
    for t in np.arange(0.0, teleop.duration, 1 / teleop.command_hz):
        moving = any(a <= t <= b for a, b in teleop.episodes)
        v = teleop.velocity(t) if moving else np.zeros(2)
        twist = T["geometry_msgs/msg/Twist"](linear=Vec(x=v[0], y=v[1], z=0.0), angular=Vec(x=0.0, y=0.0, z=0.0))
        messages.append(
            (
                _ns(t),
                "/servo_node/delta_twist_cmds",
                T["geometry_msgs/msg/TwistStamped"](header=header(_ns(t), "base"), twist=twist),
            )
        )
        pose = T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=0.1 * t, y=0.0, z=0.0),
            orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        )
        messages.append(
            (_ns(t), "/tool_pose", T["geometry_msgs/msg/PoseStamped"](header=header(_ns(t), "base"), pose=pose))
        )
    _write_sorted(writer, conns, messages)
    return path


def leader_targets(t: float) -> np.ndarray:
    """The 14 joint targets (both arms' six joints and gripper) the leader arms send at t."""
    return np.sin(t + np.arange(14) * 0.3) * 0.5


def write_aloha_rig(
    path: str | Path, seconds: float = 6.0, pause: tuple[float, float] = (2.5, 4.0), storage: str = "mcap"
) -> Path:
    """An Interbotix ALOHA bag: four raw bgr8 cameras, the followers' joint states (nine names
    each, fingers included) and the leader arms' joint states as the command, which pauses
    between two episodes."""
    path = Path(path)
    writer = _writer(path, storage)
    topics = {topic: "sensor_msgs/msg/Image" for topic in ALOHA_CAMERAS.values()}
    for side in ("left", "right"):
        topics[f"/follower_{side}/joint_states"] = "sensor_msgs/msg/JointState"
        topics[f"/leader_{side}/joint_states"] = "sensor_msgs/msg/JointState"
    conns = {t: writer.add_connection(t, m, typestore=TYPESTORE) for t, m in topics.items()}
    messages = []
    empty = np.zeros(0)
    for t in np.arange(0.0, seconds, 1 / 30):
        bgr = _frame(t, (32, 24))[:, :, ::-1]
        for topic in ALOHA_CAMERAS.values():
            msg = T["sensor_msgs/msg/Image"](
                header=header(_ns(t), "camera"), height=24, width=32, encoding="bgr8", is_bigendian=0, step=96,
                data=np.ascontiguousarray(bgr).reshape(-1),
            )  # fmt: skip
            messages.append((_ns(t), topic, msg))
    for t in np.arange(0.0, seconds, 1 / 50):
        target = leader_targets(t)
        for i, side in enumerate(("left", "right")):
            arm = target[7 * i : 7 * i + 7]
            fingers = np.array([0.02, -0.02])
            state = T["sensor_msgs/msg/JointState"](
                header=header(_ns(t), "base"), name=REPORTED_JOINTS, position=np.concatenate([arm * 0.9, fingers]),
                velocity=empty, effort=empty,
            )  # fmt: skip
            messages.append((_ns(t), f"/follower_{side}/joint_states", state))
            if not pause[0] <= t <= pause[1]:
                leader = T["sensor_msgs/msg/JointState"](
                    header=header(_ns(t), "base"), name=REPORTED_JOINTS, position=np.concatenate([arm, fingers]),
                    velocity=empty, effort=empty,
                )  # fmt: skip
                messages.append((_ns(t), f"/leader_{side}/joint_states", leader))
    _write_sorted(writer, conns, messages)
    return path


def _write_sorted(writer: Writer, conns: dict, messages: list) -> None:
    for t, topic, msg in sorted(messages, key=lambda m: m[0]):
        if topic in conns:
            writer.write(conns[topic], t, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
    writer.close()
