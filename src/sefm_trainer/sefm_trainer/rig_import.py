"""A rig's own rosbag2 recordings (``ros2 bag record``, MCAP or sqlite3) -> sefm episode bags.

A YAML map (``RigMap``) says which of the user's topics is each camera, the state and the
command, how the recording is cut into episodes, and where the instruction comes from.

Time is the bag's receive time, the clock ``ros2 bag play`` replays by. Each episode is
resampled onto a grid of steps at the control rate, one step every ``chunk / control_hz``
seconds from the first moment every mapped stream has spoken:

- the frame (and state) of step k is the newest message at or before its time. A step whose
  newest frame is older than ``max_frame_age_s`` is stale: the episode is cut there, and a piece
  shorter than ``min_steps`` is dropped and counted;
- a velocity command (``TwistStamped``) becomes the displacement it commands over the step,
  each message held until the next one or for at most ``command_timeout_s`` (MoveIt Servo's
  incoming-command timeout: a silent teleoperator means stand still);
- joint targets (a leader arm's ``JointState``, ``JointTrajectory``'s first point,
  ``Float64MultiArray``): the newest target at each of the step's ``chunk`` control periods.

What is dropped: everything before the first full set of streams, after the last command, the
stale steps, and the frames between grid points (the control rate keeps the newest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator
from rosbags.rosbag2 import Reader
from tqdm import tqdm

from sefm_interfaces.episode_protocol import EpisodeMeta, EpisodeStart
from sefm_interfaces.image_codec import ImageError, compressed_to_array, image_to_array
from sefm_interfaces.typed_config import StrictModel

from .bag_writer import TYPESTORE, EpisodeWriter

CAMERAS = {"language_table": ("front",), "aloha": ("top", "angle", "left_wrist", "right_wrist")}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
POSE_TYPES = ("geometry_msgs/msg/PoseStamped",)
TWIST_TYPES = ("geometry_msgs/msg/TwistStamped",)
JOINT_TYPES = ("sensor_msgs/msg/JointState", "trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float64MultiArray")
MARKER_TYPES = ("std_msgs/msg/Bool", "std_msgs/msg/String")


class Stream(StrictModel):
    topic: str
    joints: list[str] | None = Field(
        None, description="JointState / JointTrajectory: these joints, in this order (default: all, as sent)"
    )
    indices: list[int] | None = Field(None, description="Float64MultiArray: these elements (default: all)")


class Cut(StrictModel):
    by: Literal["bag", "marker", "gap"] = Field(
        "bag", description="bag: one episode per bag; marker: a Bool/String topic; gap: pauses in the command stream"
    )
    topic: str | None = Field(None, description="marker: std_msgs/Bool (true starts, false ends) or String start/end")
    gap_s: float = Field(1.0, gt=0, description="gap: a command pause longer than this ends an episode")


class RigMap(StrictModel):
    embodiment: Literal["language_table", "aloha"]
    cameras: dict[str, str] = Field(..., description="sefm camera name -> the rig's Image or CompressedImage topic")
    command: list[Stream] = Field(
        ..., min_length=1, description="what the operator commanded; joint topics concatenate"
    )
    state: list[Stream] = Field(
        default_factory=list, description="language_table: effector PoseStamped (optional); aloha: JointState topics"
    )
    instruction: str | None = Field(None, description="the instruction of every episode")
    instruction_topic: str | None = Field(None, description="std_msgs/String; the newest before each episode")
    episodes: Cut = Cut()
    control_hz: float = Field(10.0, gt=0)
    chunk: int = Field(1, gt=0, description="control periods per step: 1 for LanguageTable, 5 for ALOHA")
    max_frame_age_s: float = Field(0.5, gt=0)
    command_timeout_s: float = Field(0.5, gt=0)
    min_steps: int = Field(1, gt=0, description="pieces with fewer steps are dropped")
    image_size: tuple[int, int] | None = Field(None, description="(width, height) to resize frames to; none keeps them")
    success: bool | None = Field(True, description="the label of every imported episode (teleoperation: true)")
    namespace: str = "/robot_0"

    @model_validator(mode="after")
    def _consistent(self) -> RigMap:
        want = CAMERAS[self.embodiment]
        if sorted(self.cameras) != sorted(want):
            raise ValueError(f"cameras: {self.embodiment} needs exactly {list(want)}, got {sorted(self.cameras)}")
        if (self.instruction is None) == (self.instruction_topic is None):
            raise ValueError("give exactly one of instruction and instruction_topic")
        if self.episodes.by == "marker" and self.episodes.topic is None:
            raise ValueError("episodes.topic: cutting by marker needs the marker topic")
        if self.embodiment == "language_table" and len(self.command) != 1:
            raise ValueError("command: language_table takes one TwistStamped topic")
        if self.embodiment == "aloha" and not self.state:
            raise ValueError("state: aloha needs its JointState topics (the model reads the joints)")
        return self

    @property
    def step_s(self) -> float:
        return self.chunk / self.control_hz


class ImportProblem(ValueError):
    """A recording (or one episode of it) that cannot be imported; the others still are."""


@dataclass
class Series:
    """One stream's messages by receive time; ``values`` decoded, or raw CDR for frames."""

    times: np.ndarray
    values: list

    def newest(self, t: np.ndarray) -> np.ndarray:
        """Index of the newest message at or before each time (-1: none yet)."""
        return np.searchsorted(self.times, t, side="right") - 1


@dataclass
class ImportSummary:
    bags: int = 0
    episodes: int = 0
    steps: int = 0
    seconds: float = 0.0  # recording time the episodes cover
    dropped_steps: int = 0
    problems: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def import_bags(bags: list[str | Path], rig: RigMap, out: str | Path, progress: bool = True) -> dict:
    """Import every bag; a bag that cannot be read is reported by name and the rest go on."""
    started = time.monotonic()
    summary = ImportSummary()
    for bag in tqdm(bags, desc="import", unit="bag", disable=not progress):
        summary.bags += 1
        try:
            _import_bag(Path(bag), rig, Path(out), summary)
        except ImportProblem as err:
            summary.problems.append(str(err))
    return {
        "bags": summary.bags,
        "episodes": summary.episodes,
        "steps": summary.steps,
        "seconds": round(summary.seconds, 3),
        "dropped_steps": summary.dropped_steps,
        "problems": summary.problems,
        "out": str(out),
        "wall_s": round(time.monotonic() - started, 2),
    }


def _import_bag(bag: Path, rig: RigMap, out: Path, summary: ImportSummary) -> None:
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as err:  # rosbags raises several types for unreadable bags
        raise ImportProblem(f"{bag}: not a readable rosbag2 ({err})") from err
    try:
        series = _read_streams(reader, bag, rig)
    finally:
        reader.close()
    for index, (start, end) in enumerate(_segments(series, rig, bag)):
        try:
            pieces, dropped = _resample(series, rig, start, end)
        except ImportProblem as err:
            summary.problems.append(f"{bag} episode {index}: {err}")
            continue
        summary.dropped_steps += dropped
        for part, grid in enumerate(pieces):
            name = f"{bag.name}_{index:04d}" + (f"_{part}" if len(pieces) > 1 else "")
            try:
                path = _write(series, rig, grid, out, name, bag)
            except ImportProblem as err:
                summary.problems.append(f"{bag} episode {index}: {err}")
                continue
            summary.episodes += 1
            summary.steps += len(grid) - 1
            summary.seconds += (grid[-1] - grid[0]) / 1e9
            summary.written.append(str(path))


def _topic_types(reader: Reader, bag: Path, rig: RigMap) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every mapped topic -> (its type in the bag, the types it may have); a missing topic or a
    type that does not match is a problem named by bag and topic."""
    joint_or_pose = POSE_TYPES if rig.embodiment == "language_table" else JOINT_TYPES
    wanted = {topic: IMAGE_TYPES for topic in rig.cameras.values()}
    wanted |= {s.topic: (TWIST_TYPES if rig.embodiment == "language_table" else JOINT_TYPES) for s in rig.command}
    wanted |= {s.topic: joint_or_pose for s in rig.state}
    if rig.instruction_topic:
        wanted[rig.instruction_topic] = ("std_msgs/msg/String",)
    if rig.episodes.by == "marker":
        wanted[rig.episodes.topic] = MARKER_TYPES
    present = {c.topic: c.msgtype for c in reader.connections}
    found = {}
    for topic, allowed in wanted.items():
        if topic not in present:
            raise ImportProblem(f"{bag}: mapped topic {topic} is not in the recording")
        if present[topic] not in allowed:
            raise ImportProblem(f"{bag}: topic {topic} is {present[topic]}; the map needs one of {list(allowed)}")
        found[topic] = (present[topic], allowed)
    return found


def _read_streams(reader: Reader, bag: Path, rig: RigMap) -> dict[str, Series]:
    """Decode every mapped topic but the cameras, whose raw CDR is kept and decoded only for the
    frames an episode keeps (a 30 Hz camera holds three frames per step)."""
    types = _topic_types(reader, bag, rig)
    selectors = {s.topic: s for s in (*rig.command, *rig.state)}
    cameras = set(rig.cameras.values())
    collected: dict[str, tuple[list, list]] = {t: ([], []) for t in types}
    connections = [c for c in reader.connections if c.topic in types]
    total = sum(c.msgcount for c in connections)
    for conn, t, raw in tqdm(reader.messages(connections=connections), total=total, desc=bag.name, leave=False):
        times, values = collected[conn.topic]
        if conn.topic in cameras:
            value = (conn.msgtype, bytes(raw))
        else:
            msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            value = _decode(msg, conn.msgtype, selectors.get(conn.topic), bag, conn.topic)
        times.append(int(t))
        values.append(value)
    series = {}
    for topic, (times, values) in collected.items():
        order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
        series[topic] = Series(np.asarray(times, dtype=np.int64)[order], [values[i] for i in order])
    return series


def _decode(msg, msgtype: str, stream: Stream | None, bag: Path, topic: str):
    if msgtype == "geometry_msgs/msg/TwistStamped":
        return np.array([msg.twist.linear.x, msg.twist.linear.y])
    if msgtype == "geometry_msgs/msg/PoseStamped":
        return np.array([msg.pose.position.x, msg.pose.position.y])
    if msgtype == "std_msgs/msg/Bool":
        return bool(msg.data)
    if msgtype == "std_msgs/msg/String":
        return str(msg.data)
    if msgtype == "std_msgs/msg/Float64MultiArray":
        values = np.asarray(msg.data, dtype=np.float64)
        if stream is not None and stream.indices is not None:
            if max(stream.indices, default=-1) >= values.size:
                raise ImportProblem(f"{bag}: {topic} has {values.size} values; the map picks {stream.indices}")
            values = values[stream.indices]
        return values
    if msgtype == "sensor_msgs/msg/JointState":
        names, values = list(msg.name), np.asarray(msg.position, dtype=np.float64)
    else:  # JointTrajectory: its first point is where the arm is sent next
        names = list(msg.joint_names)
        values = np.asarray(msg.points[0].positions, dtype=np.float64) if msg.points else np.full(len(names), np.nan)
    if stream is None or stream.joints is None:
        return values
    missing = [j for j in stream.joints if j not in names]
    if missing:
        raise ImportProblem(f"{bag}: {topic} lacks joints {missing} (it has {names})")
    return values[[names.index(j) for j in stream.joints]]


def _segments(series: dict[str, Series], rig: RigMap, bag: Path) -> list[tuple[int, int]]:
    """(start, end) receive times of each episode in the recording."""
    command = series[rig.command[0].topic].times
    if command.size == 0:
        raise ImportProblem(f"{bag}: the command topic {rig.command[0].topic} has no messages")
    if rig.episodes.by == "bag":
        return [(int(min(s.times[0] for s in series.values() if s.times.size)), int(command[-1]))]
    if rig.episodes.by == "gap":
        breaks = np.flatnonzero(np.diff(command) > rig.episodes.gap_s * 1e9)
        starts = [command[0], *command[breaks + 1]]
        ends = [*command[breaks], command[-1]]
        return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
    marks = series[rig.episodes.topic]
    segments, opened = [], None
    for t, value in zip(marks.times, marks.values, strict=True):
        starting = value is True or (isinstance(value, str) and value.strip().lower() == "start")
        ending = value is False or (isinstance(value, str) and value.strip().lower() == "end")
        if starting:
            opened = int(t)
        elif ending and opened is not None:
            segments.append((opened, int(t)))
            opened = None
    if opened is not None:
        segments.append((opened, int(command[-1])))
    return segments


def _resample(series: dict[str, Series], rig: RigMap, start: int, end: int) -> tuple[list[np.ndarray], int]:
    """The step times of the episode's pieces (each with its final frame) and how many steps were dropped."""
    observed = [*rig.cameras.values(), *(s.topic for s in rig.state)]
    firsts = []
    for topic in observed + [s.topic for s in rig.command]:
        times = series[topic].times
        inside = times[(times >= start) & (times <= end)]
        if inside.size == 0:
            raise ImportProblem(f"{topic} has no messages between {start} and {end} ns")
        firsts.append(int(inside[0]))
    last_command = int(series[rig.command[0].topic].times[series[rig.command[0].topic].times <= end][-1])
    t0, step_ns = max(firsts), round(rig.step_s * 1e9)
    stop = min(end, last_command + step_ns)
    if stop - t0 < step_ns:
        raise ImportProblem(f"shorter than one step ({(stop - max(t0, start)) / 1e9:.2f} s of all streams together)")
    grid = t0 + step_ns * np.arange((stop - t0) // step_ns + 1, dtype=np.int64)
    fresh = np.ones(grid.size, dtype=bool)
    for topic in rig.cameras.values():
        s = series[topic]
        idx = s.newest(grid)
        fresh &= (idx >= 0) & (grid - s.times[np.maximum(idx, 0)] <= rig.max_frame_age_s * 1e9)
    pieces, dropped, run = [], 0, []
    for t, ok in zip(grid, fresh, strict=True):
        if ok:
            run.append(t)
            continue
        dropped += 1
        if run:
            pieces.append(run)
        run = []
    if run:
        pieces.append(run)
    kept = []
    for piece in pieces:
        if len(piece) - 1 >= rig.min_steps:
            kept.append(np.asarray(piece, dtype=np.int64))
        else:
            dropped += len(piece)
    if not kept:
        raise ImportProblem(f"no stretch of at least {rig.min_steps} steps with fresh frames")
    return kept, dropped


def _displacements(commands: Series, grid: np.ndarray, timeout_ns: int) -> np.ndarray:
    """(len(grid) - 1, 2): the displacement each held velocity commands between grid points."""
    t = commands.times
    v = np.stack(commands.values)
    held = np.minimum(np.diff(t, append=np.iinfo(np.int64).max), timeout_ns)  # how long each command acts
    cumulative = np.vstack([np.zeros(2), np.cumsum(v * (held[:, None] / 1e9), axis=0)])

    def at(times: np.ndarray) -> np.ndarray:
        i = np.searchsorted(t, times, side="right") - 1
        base = cumulative[np.maximum(i, 0)]  # the displacement before command i
        since = np.minimum(times - t[np.maximum(i, 0)], held[np.maximum(i, 0)]) / 1e9
        return np.where((i >= 0)[:, None], base + v[np.maximum(i, 0)] * since[:, None], 0.0)

    return np.diff(at(grid), axis=0)


def _joint_targets(series: dict[str, Series], streams: list[Stream], times: np.ndarray) -> np.ndarray:
    """(len(times), joints): the newest value of each stream at each time, concatenated."""
    parts = []
    for stream in streams:
        s = series[stream.topic]
        idx = np.maximum(s.newest(times), 0)
        parts.append(np.stack([s.values[i] for i in idx]))
    return np.concatenate(parts, axis=1)


def _frame(series: Series, t: int, size: tuple[int, int] | None) -> np.ndarray:
    msgtype, raw = series.values[int(series.newest(np.array([t]))[0])]
    msg = TYPESTORE.deserialize_cdr(raw, msgtype)
    try:
        rgb = compressed_to_array(msg) if msgtype.endswith("CompressedImage") else image_to_array(msg)
    except ImageError as err:
        raise ImportProblem(f"a frame at {t} ns cannot be read: {err}") from err
    return rgb if size is None else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _write(series: dict[str, Series], rig: RigMap, grid: np.ndarray, out: Path, name: str, bag: Path) -> Path:
    steps = len(grid) - 1
    if rig.embodiment == "language_table":
        actions = _displacements(series[rig.command[0].topic], grid, int(rig.command_timeout_s * 1e9))
    else:
        period = round(1e9 / rig.control_hz)
        ahead = grid[:-1, None] + period * np.arange(1, rig.chunk + 1)[None, :]
        actions = _joint_targets(series, rig.command, ahead.reshape(-1)).reshape(steps, rig.chunk, -1)
    states = _joint_targets(series, rig.state, grid) if rig.state else None
    instruction = rig.instruction or _instruction(series[rig.instruction_topic], int(grid[0]), int(grid[-1]))
    joint_names = _joint_names(rig.command, actions.shape[-1]) if rig.embodiment == "aloha" else None
    with EpisodeWriter(out, name, rig.namespace) as writer:
        writer.event(int(grid[0]), EpisodeStart(instruction=instruction, source=str(bag)))
        writer.instruction(int(grid[0]), instruction)
        for k, t in enumerate(grid):
            for camera, topic in rig.cameras.items():
                writer.image(camera, int(t), _frame(series[topic], int(t), rig.image_size))
            if states is not None and rig.embodiment == "language_table":
                writer.effector_pose(int(t), states[k])
            elif states is not None:
                writer.joint_state(int(t), _joint_names(rig.state, states.shape[1]), states[k])
            if k == steps:
                break
            if rig.embodiment == "language_table":
                writer.planar_command(int(t) + 1000, int(t), actions[k], rig.step_s)
            else:
                writer.joint_command(int(t) + 1000, int(t), joint_names, actions[k], 1.0 / rig.control_hz)
        meta = EpisodeMeta(
            instruction=instruction,
            embodiment=rig.embodiment,
            length=steps,
            success=rig.success,
            termination="success" if rig.success else "abort",
            policy_version="teleoperation",
            namespace=rig.namespace,
            cameras=list(rig.cameras),
            control_hz=rig.control_hz,
            extra={"source": str(bag), "source_start_ns": int(grid[0]), "chunk": rig.chunk},
        )
        return writer.commit(meta, int(grid[-1]) + 2000)


def _joint_names(streams: list[Stream], count: int) -> list[str]:
    """``<topic's first name>/<joint>`` where the map lists every joint (two arms share names),
    else positional names."""
    names = [f"{s.topic.strip('/').split('/')[0]}/{j}" for s in streams for j in (s.joints or [])]
    return names if len(names) == count else [f"joint_{i}" for i in range(count)]


def _instruction(series: Series, start: int, end: int) -> str:
    """The newest instruction at or before the episode's start, else the first one inside it."""
    i = int(series.newest(np.array([start]))[0])
    if i < 0:
        inside = np.flatnonzero((series.times >= start) & (series.times <= end))
        if inside.size == 0:
            raise ImportProblem("no instruction was published before or during it")
        i = int(inside[0])
    return series.values[i]
