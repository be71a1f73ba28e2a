"""Faults a rig meets: malformed camera messages, stale frames, a supervisor that dies."""

import signal
import time

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Float32

from sefm.harness import bags, graph, log_text, practice_nodes, running, spin_until
from sefm_interfaces.ros_common import SIM_CAMERA_QOS, array_to_image, stamp_ns
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.bag_writer import recorded_start_ns

pytestmark = pytest.mark.ros
TIMEOUT = 120
DEEP = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
CAMERA = "/robot_0/camera/front/image_raw"


def camera_graph(ckpt):
    """Policy, reward and an episode manager with listed instructions: the probe is the camera."""
    return graph(
        {
            "policy": {"checkpoint": str(ckpt), "actuation_enabled": True},
            "reward": {"checkpoint": str(ckpt)},
            "episode_manager": {"source": "list", "max_steps": 10_000},
        }
    )


FAULTS = ("unsupported encoding 'yuv422'", "bytes of data, expected", "empty image")  # what the nodes log


def frame(stamp_ns: int, value: int = 120) -> Image:
    return array_to_image(np.full((96, 96, 3), value, np.uint8), stamp_ns, "camera_front")


def spin_for(executor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)


def test_malformed_camera_messages_are_skipped_and_the_next_good_frame_is_answered(tiny_checkpoints, tmp_path):
    with running(camera_graph(tiny_checkpoints[0]), tmp_path / "logs") as (bringup, probe, executor):
        answered, distances = set(), []
        probe.create_subscription(TwistStamped, "/robot_0/policy/command", lambda m: answered.add(stamp_ns(m)), DEEP)
        probe.create_subscription(Float32, "/robot_0/reward/steps_to_go", lambda m: distances.append(m.data), DEEP)
        camera = probe.create_publisher(Image, CAMERA, SIM_CAMERA_QOS)
        now = lambda: probe.get_clock().now().nanoseconds  # noqa: E731
        sent = []

        def answering(encoding: str = "rgb8") -> bool:
            """Send a fresh frame; has any frame sent since ``sent`` was emptied been answered?
            Cameras are sensor QoS (best effort), so under load one frame can be lost."""
            sent.append(now())
            msg = frame(sent[-1])
            msg.encoding = encoding
            camera.publish(msg)
            return bool(answered & set(sent))

        spin_until(executor, bringup, answering, TIMEOUT, "a command")
        bad = []

        def faults_logged() -> bool:
            """Send one frame of each fault; have both nodes logged all three?"""
            for change in ({"encoding": "yuv422"}, {"data": b"\x00" * 10}, {"height": 0, "width": 0, "data": b""}):
                msg = frame(now())
                for key, value in change.items():
                    setattr(msg, key, value)
                bad.append(stamp_ns(msg))
                camera.publish(msg)
            spin_for(executor, 0.5)
            return all(all(f in log_text(bringup, n) for f in FAULTS) for n in ("policy", "reward"))

        spin_until(executor, bringup, faults_logged, 30, "the faults to be logged")
        sent.clear()
        spin_until(executor, bringup, lambda: answering("bgr8"), 30, "a bgr8 frame's command")
        before = len(distances)
        sent.clear()
        spin_until(executor, bringup, lambda: answering() and len(distances) > before, 30, "answers")
        assert not set(bad) & answered  # and both nodes are still up (spin_until fails on a death)


def test_commands_answering_stale_frames_are_stops(tiny_checkpoints, tmp_path):
    nodes = {
        "policy": {"checkpoint": str(tiny_checkpoints[0]), "actuation_enabled": True, "temperature": 3.0},
        "episode_manager": {"source": "list", "max_steps": 10_000, "wait_for_topics": ["policy/command"]},
    }
    with running(graph(nodes), tmp_path / "logs") as (bringup, probe, executor):
        commands = {}
        keep = lambda m: commands.setdefault(stamp_ns(m), m)  # noqa: E731
        probe.create_subscription(TwistStamped, "/robot_0/policy/command", keep, DEEP)
        camera = probe.create_publisher(Image, CAMERA, SIM_CAMERA_QOS)
        sent = []

        def lagging_camera() -> bool:  # every frame reaches the policy two seconds after it was taken
            sent.append(probe.get_clock().now().nanoseconds - 2_000_000_000)
            camera.publish(frame(sent[-1]))
            return len(set(sent) & set(commands)) >= 3

        spin_until(executor, bringup, lagging_camera, TIMEOUT, "answers to three late frames")
        spin_until(executor, bringup, lambda: "stale observation" in log_text(bringup, "policy"), 10, "the log")
    answers = [commands[s].twist.linear for s in set(sent) & set(commands)]
    assert all(a.x == 0.0 and a.y == 0.0 for a in answers)


def test_the_policy_holds_when_the_episode_manager_dies(tiny_checkpoints, tmp_path):
    nodes = {
        "sim_bridge": {"mode": "realtime", "control_hz": 10.0},
        "policy": {"checkpoint": str(tiny_checkpoints[0]), "actuation_enabled": True, "temperature": 3.0},
        "episode_manager": {"max_steps": 10_000, "wait_for_topics": ["policy/command"]},
    }
    with running(graph(nodes), tmp_path / "logs") as (bringup, probe, executor):
        received = []
        probe.create_subscription(
            TwistStamped, "/robot_0/policy/command", lambda m: received.append((time.monotonic(), m)), DEEP
        )
        moving = lambda: sum(abs(m.twist.linear.x) + abs(m.twist.linear.y) > 0 for _, m in received) >= 5  # noqa: E731
        spin_until(executor, bringup, moving, TIMEOUT, "the policy to move the robot")
        (manager,) = [p for spec, p in bringup.procs if spec.name == "episode_manager"]
        killed = time.monotonic()
        manager.send_signal(signal.SIGKILL)
        spin_for(executor, 3.0)
        log = log_text(bringup, "policy")
    timeout = 0.5  # PolicyParams.supervisor_timeout_s; the watchdog then acts within a control period
    zero = lambda m: m.twist.linear.x == 0 and m.twist.linear.y == 0  # noqa: E731
    moving_after = [t - killed for t, m in received if t > killed and not zero(m)]
    stops = [t - killed for t, m in received if t > killed and zero(m)]
    assert not moving_after or max(moving_after) < timeout + 0.15, moving_after
    assert stops and min(stops) < timeout + 0.25, stops
    assert "holding: episode manager silent" in log


@pytest.mark.parametrize("victim", ["recorder", "policy", "sim_bridge", "reward", "episode_manager"])
def test_a_node_killed_mid_episode_is_respawned_and_every_landed_episode_is_whole(victim, tiny_checkpoints, tmp_path):
    out = tmp_path / "episodes"
    config = graph(practice_nodes(tiny_checkpoints[0], out, max_steps=8), respawn=True, respawn_delay_s=0.2)
    with running(config, tmp_path / "logs") as (bringup, probe, executor):
        steps = []
        probe.create_subscription(TwistStamped, "/robot_0/policy/command", steps.append, DEEP)
        spin_until(executor, bringup, lambda: len(bags(out)) >= 1 and len(steps) % 8 >= 3, TIMEOUT, "mid-episode")
        before = len(bags(out))
        (proc,) = [p for spec, p in bringup.procs if spec.name == victim]
        proc.send_signal(signal.SIGKILL)
        spin_until(executor, bringup, lambda: bringup.respawns == 1, TIMEOUT, f"{victim} to be respawned")
        # Counted by when they started, not by bags landed: a recorder waiting on a late frame may
        # land a backlog of episodes from before the kill all at once (a red CI run did).
        respawned = time.time_ns()
        later = lambda: [p for p in bags(out) if recorded_start_ns(p) > respawned]  # noqa: E731
        spin_until(executor, bringup, lambda: len(later()) >= 2, TIMEOUT, "episodes started after the respawn")
        logs = {s.name: log_text(bringup, s.name) for s in bringup.specs}
        assert bringup.respawns == 1, {name: log[-3000:] for name, log in logs.items() if "respawning" in log}
        assert f"{victim} exited with -9; respawning" in log_text(bringup, victim)
    loaded = load_episodes(out, progress=False)
    assert loaded.skipped == [] and len(loaded.episodes) >= before + 2  # a cut episode never lands half-written
    # Whole: a frame before every action and one after the last. An episode whose sim died takes
    # no step, so the manager ends it as an error after stall_timeout_s; every other one runs to 8.
    assert all(ep.frames["front"].shape[0] == ep.meta.length + 1 for ep in loaded.episodes)
    assert all(ep.meta.length == 8 for ep in loaded.episodes if ep.meta.termination != "error")
    assert all(not ep.meta.extra["detected_success"] for ep in loaded.episodes)
    assert all(ep.meta.success is not None for ep in loaded.episodes if ep.meta.termination != "error")
