"""Read episode bags (MCAP or sqlite3, ours or ``ros2 bag record``'s) into aligned arrays.

A folder may hold bags that are not episodes, or are truncated: each is reported with its
path and the reason, and the rest still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from tqdm import tqdm

from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeMeta, ProtocolError, decode_event
from sefm_interfaces.frame_sync import joint_positions
from sefm_interfaces.image_codec import ImageError, image_to_array
from sefm_interfaces.topics import (
    ACTION_TOKENS,
    COMMAND,
    EFFECTOR_POSE,
    EVENTS,
    JOINT_STATES,
    SIM_OBJECTS,
    SIM_SUCCESS,
    VERDICTS,
)
from sefm_interfaces.typed_config import UsageError
from sefm_policy.config import EFMConfig

from .bag_writer import CHECKSUMS, TYPESTORE, file_sha256
from .episode import METADATA_KEY, Episode

CAMERA = re.compile(r"^(?P<ns>.*)/camera/(?P<cam>[^/]+)/image_raw$")
DEFAULT_CHUNK = EFMConfig.model_fields["action_chunk"].default
# What an action is, by the command's type: a planar velocity (LanguageTable) or a joint chunk (ALOHA).
COMMAND_TYPES = ("geometry_msgs/msg/TwistStamped", "trajectory_msgs/msg/JointTrajectory")


class NotAnEpisode(UsageError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _stamp(msg) -> int:
    return _ns(msg.header.stamp)


def _ns(time) -> int:
    return int(time.sec) * 1_000_000_000 + int(time.nanosec)


def _topic(topics, suffix: str) -> str | None:
    found = [t for t in topics if t == suffix or t.endswith("/" + suffix)]
    return found[0] if found else None


def _action(msg, period: float) -> np.ndarray:
    """A command as the action it encodes: a planar delta (m) or a chunk of joint targets."""
    if hasattr(msg, "twist"):
        return np.array([msg.twist.linear.x * period, msg.twist.linear.y * period])
    return np.stack([np.asarray(p.positions, dtype=np.float64) for p in msg.points])


def acted_frames(frame_stamps: Sequence[int], command_stamps: Sequence[int], length: int) -> dict[int, int]:
    """Which frame each of an episode's ``length`` actions answered: {frame index: command index}.

    Each command answers the newest frame at or before the stamp in its header; a frame's first
    answer is its action (a later one, e.g. a watchdog stop, is not an action), and actions past
    the episode's ``length`` (a live recorder may catch them) are not the episode's. The frame
    after the last action must be there too: it is what that action led to. Raises ValueError
    saying what is missing; the recorder commits a bag only once this holds, the reader reads
    only bags for which it holds.
    """
    stamps = np.asarray(frame_stamps, dtype=np.int64)
    answered: dict[int, int] = {}
    for k, i in enumerate(np.searchsorted(stamps, np.asarray(command_stamps, dtype=np.int64), side="right") - 1):
        if i >= 0:
            answered.setdefault(int(i), k)
    if len(answered) < length:
        raise ValueError(f"metadata says {length} steps but the bag holds {len(answered)} actions")
    acted = sorted(answered)[:length]
    if acted and acted[-1] + 1 >= len(stamps):
        raise ValueError("the frame after the last action is missing")
    return {i: answered[i] for i in acted}


def nearest_parts(table: dict, at: Sequence[int], slop_ns: int = 0) -> dict:
    """``table`` (stamp -> part) re-keyed to the stamps ``at``: each takes the part nearest it
    within ``slop_ns`` (exactly its own stamp at 0), as the policy's FrameSync gathers a moment
    from drivers that stamp on their own clocks; a stamp with no part near it is left out."""
    if not slop_ns or not table:
        return {s: table[s] for s in at if s in table}
    keys = np.array(sorted(table), dtype=np.int64)
    out = {}
    for s in at:
        i = int(np.searchsorted(keys, s))
        near = min(keys[max(i - 1, 0) : i + 1], key=lambda k: abs(int(k) - s))
        if abs(int(near) - s) <= slop_ns:
            out[s] = table[int(near)]
    return out


def _holds_filled(actions: list, frame_stamps: list[int], joints: dict, path: Path) -> list[np.ndarray]:
    """A stop (None) as the chunk it executed: the joints where the arm was, held for the chunk
    (as long as the episode's other chunks, or the policy's default where every step was a stop)."""
    chunk = next((len(a) for a in actions if a is not None), DEFAULT_CHUNK)
    out = []
    for action, stamp in zip(actions, frame_stamps, strict=True):
        if action is None:
            if stamp not in joints:
                raise NotAnEpisode(path, "a stop answered a frame whose joint states are missing")
            action = np.repeat(joints[stamp][None], chunk, axis=0)
        out.append(action)
    return out


def _metadata(reader: Reader, path: Path, events_topic: str | None) -> EpisodeMeta:
    custom = getattr(getattr(reader.storage, "metadata", None), "custom", None) or {}
    text = custom.get(METADATA_KEY)
    if text is None and events_topic is not None:
        conns = [c for c in reader.connections if c.topic == events_topic]
        for conn, _, raw in reader.messages(connections=conns):
            with contextlib.suppress(ProtocolError):  # another tool's events on the topic are not ours
                event = decode_event(TYPESTORE.deserialize_cdr(raw, conn.msgtype).data)
                if isinstance(event, EpisodeEnd):
                    text = json.dumps(event.metadata)
    if text is None:
        raise NotAnEpisode(path, f"no sefm episode metadata (custom_data '{METADATA_KEY}' or an end event)")
    try:
        return EpisodeMeta.from_json(text)
    except (ValueError, TypeError) as err:
        raise NotAnEpisode(path, f"invalid episode metadata: {err}") from None


def _check_topics(reader: Reader, path: Path) -> dict[str, str]:
    topics = reader.topics
    cameras = {t: CAMERA.match(t)["cam"] for t in topics if CAMERA.match(t)}
    command = _topic(topics, COMMAND)
    missing = ([] if cameras else ["camera/<name>/image_raw"]) + ([] if command else [COMMAND])
    unknown = sorted({i.msgtype for i in topics.values() if i.msgtype not in TYPESTORE.types})
    if missing:
        note = f"; types not in the ROS 2 Jazzy typestore: {', '.join(unknown)}" if unknown else ""
        raise NotAnEpisode(path, f"not an sefm episode: missing topics {missing} (it has {sorted(topics)}){note}")
    needed = [*cameras, command, *(_topic(topics, t) for t in (ACTION_TOKENS, EFFECTOR_POSE, JOINT_STATES))]
    bad = sorted({f"{t} ({topics[t].msgtype})" for t in needed if t and topics[t].msgtype not in TYPESTORE.types})
    if bad:
        raise NotAnEpisode(path, f"cannot decode {', '.join(bad)}")
    if topics[command].msgtype not in COMMAND_TYPES:
        raise NotAnEpisode(path, f"{command} is {topics[command].msgtype}; episodes need one of {COMMAND_TYPES}")
    return cameras


def _with_bag(path: str | Path, read):
    """``read(reader, path)`` on an open bag; any failure of a broken file becomes NotAnEpisode."""
    path = Path(path)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # rosbags raises many types for broken files
        raise NotAnEpisode(path, f"unreadable bag ({type(err).__name__}: {err})") from None
    try:
        return read(reader, path)
    except NotAnEpisode:
        raise
    except Exception as err:  # a truncated file can fail anywhere in the read
        raise NotAnEpisode(path, f"unreadable bag ({type(err).__name__}: {err})") from None
    finally:
        reader.close()


def peek_episode(path: str | Path) -> EpisodeMeta:
    """Check topics and metadata without reading the messages."""

    def peek(reader: Reader, path: Path) -> EpisodeMeta:
        _check_topics(reader, path)
        return _metadata(reader, path, _topic(reader.topics, EVENTS))

    return _with_bag(path, peek)


def read_episode(path: str | Path) -> Episode:
    verify_checksums(Path(path))
    return _with_bag(path, _read)


def verify_checksums(path: Path) -> None:
    """A bag we recorded carries SHA256SUMS; one whose bytes changed since is not an episode.
    Bags from elsewhere (``ros2 bag record``) have none and are read as they are."""
    sums = path / CHECKSUMS
    if not sums.is_file():
        return
    for line in sums.read_text(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        f = path / name
        if not f.is_file():
            raise NotAnEpisode(path, f"{name} is listed in {CHECKSUMS} but missing")
        if file_sha256(f) != digest:
            raise NotAnEpisode(path, f"{name} does not match its SHA-256 in {CHECKSUMS}: its bytes changed")


def _read(reader: Reader, path: Path) -> Episode:
    cameras = _check_topics(reader, path)
    topics = reader.topics
    meta = _metadata(reader, path, _topic(topics, EVENTS))
    command, tokens_topic, pose_topic, joints_topic, verdict_topic, objects_topic = (
        _topic(topics, s) for s in (COMMAND, ACTION_TOKENS, EFFECTOR_POSE, JOINT_STATES, SIM_SUCCESS, SIM_OBJECTS)
    )
    period = 1.0 / meta.control_hz
    frames: dict[str, list] = {c: [] for c in cameras.values()}
    commands, tokens, poses, joints, verdicts, places = [], [], {}, {}, {}, {}
    wanted = [
        c
        for c in reader.connections
        if c.topic in {*cameras, command, tokens_topic, pose_topic, joints_topic, verdict_topic, objects_topic}
    ]
    for conn, _, raw in reader.messages(connections=wanted):
        msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
        if conn.topic in cameras:
            try:
                image = image_to_array(msg)  # a rig's camera may publish bgr8, rgba8 or mono8
            except ImageError as err:
                raise NotAnEpisode(path, f"{conn.topic}: {err}") from err
            frames[cameras[conn.topic]].append((_stamp(msg), image))
        elif conn.topic == command:
            # An empty trajectory is the policy's stop: the arm held where it was (filled in below).
            held = hasattr(msg, "points") and not msg.points
            commands.append((_stamp(msg), None if held else _action(msg, period)))
        elif conn.topic == tokens_topic:
            tokens.append(np.asarray(msg.data, dtype=np.int64))
        elif conn.topic == joints_topic:
            try:  # a rig's merged joint states: the recorder names the joints the policy reads
                joints[_stamp(msg)] = joint_positions(msg.name, msg.position, meta.extra.get("state_joints", ()))
            except ValueError as err:
                raise NotAnEpisode(path, f"{conn.topic}: {err}") from err
        elif conn.topic == verdict_topic:
            verdicts[_ns(msg.stamp)] = VERDICTS.get(msg.frame_id)
        elif conn.topic == objects_topic:
            places[_stamp(msg.markers[0]) if msg.markers else -1] = {
                m.ns: (m.pose.position.x, m.pose.position.y) for m in msg.markers
            }
        else:
            poses[_stamp(msg)] = (msg.pose.position.x, msg.pose.position.y)

    primary = meta.cameras[0] if meta.cameras and meta.cameras[0] in frames else next(iter(frames))
    for cam in frames:
        frames[cam].sort(key=lambda f: f[0])
    stamps = np.array([s for s, _ in frames[primary]], dtype=np.int64)
    commands.sort(key=lambda c: c[0])
    try:
        answered = acted_frames(stamps, [c[0] for c in commands], meta.length)
    except ValueError as err:
        raise NotAnEpisode(path, str(err)) from err
    acted = sorted(answered)
    commands = [commands[answered[i]] for i in acted]
    keep = [*acted, acted[-1] + 1] if acted else [0]
    kept_stamps = stamps[keep]
    at, slop = kept_stamps.tolist(), round(float(meta.extra.get("sync_slop_s", 0.0)) * 1e9)
    poses, joints = nearest_parts(poses, at, slop), nearest_parts(joints, at, slop)  # a rig's drivers' own stamps
    if commands:
        actions = np.stack(_holds_filled([a for _, a in commands], [int(stamps[k]) for k in acted], joints, path))
    else:
        actions = np.zeros((0, 2)) if topics[command].msgtype == COMMAND_TYPES[0] else np.zeros((0, 0, 0))
    frame_arrays = {}
    for cam, items in frames.items():
        by_stamp = nearest_parts(dict(items), at, slop)
        if any(int(stamps[k]) not in by_stamp for k in keep):
            raise NotAnEpisode(path, f"camera {cam} lacks frames that camera {primary} has")
        frame_arrays[cam] = np.stack([by_stamp[int(stamps[k])] for k in keep])
    effector = None
    if poses and all(int(s) in poses for s in kept_stamps):
        effector = np.array([poses[int(s)] for s in kept_stamps])
    joint_states = None
    if joints and all(int(s) in joints for s in kept_stamps):
        joint_states = np.stack([joints[int(s)] for s in kept_stamps])
    objects = None
    if places and all(int(s) in places for s in kept_stamps):
        names = list(places[int(kept_stamps[0])])
        objects = {n: np.array([places[int(s)][n] for s in kept_stamps]) for n in names}
    if verdict_topic is not None:
        # A live bag's ground truth is the sim's verdict on the final frame, matched by stamp; a
        # verdict that never landed leaves it unknown rather than borrowed from another frame.
        meta.success = verdicts.get(int(kept_stamps[-1]))
    return Episode(
        path=path,
        meta=meta,
        frames=frame_arrays,
        stamps_ns=kept_stamps,
        actions=actions,
        action_tokens=np.stack(tokens[: meta.length]) if len(tokens) >= meta.length > 0 else None,
        effector=effector,
        joint_states=joint_states,
        objects=objects,
    )


def select_fraction(names: Sequence[str], fraction: float, seed: int = 0) -> list[str]:
    """A deterministic subset: rank names by a seeded hash and keep the first ``fraction``.

    Smaller fractions are subsets of larger ones (10% ⊂ 20% ⊂ 80%), as in the paper's sweeps."""
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"fraction must be in (0, 1], got {fraction}")
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    return sorted(ranked[: max(1, round(fraction * len(ranked)))]) if ranked else []


@dataclass
class EpisodeSet:
    episodes: list[Episode] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def load_episodes(root: str | Path, fraction: float | None = None, seed: int = 0, progress: bool = True) -> EpisodeSet:
    """Every episode bag directly under ``root`` (hidden entries, i.e. unfinished writes, are ignored)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"episode folder {root} does not exist")
    result = EpisodeSet()
    valid = []
    for path in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        try:
            peek_episode(path)
            valid.append(path)
        except NotAnEpisode as err:
            result.skipped.append((path, err.reason))
    if fraction is not None:
        chosen = set(select_fraction([p.name for p in valid], fraction, seed))
        valid = [p for p in valid if p.name in chosen]
    for path in tqdm(valid, desc="reading episodes", unit="ep", disable=not progress or len(valid) < 20):
        try:
            result.episodes.append(read_episode(path))
        except NotAnEpisode as err:
            result.skipped.append((path, err.reason))
    return result
