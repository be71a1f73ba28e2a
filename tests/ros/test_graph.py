import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, Header, String

from sefm.graph import node_specs
from sefm.harness import bags, graph, log_text, practice_nodes, running, spin_until
from sefm_interfaces.ros_common import LATCHED_QOS, RELIABLE_QOS, stamp_ns
from sefm_interfaces.topics import SIM_SUCCESS, VERDICTS
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.bag_writer import TYPESTORE

pytestmark = pytest.mark.ros
TIMEOUT = 120
DEEP = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)


def children_of(pid: int) -> list[str]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            kids.append(stat.parent.name)
    return kids


def test_two_robot_fleet_records_whole_episodes_and_stops_cleanly(tiny_checkpoints, tmp_path):
    out = tmp_path / "episodes"
    config = graph(practice_nodes(tiny_checkpoints[0], out), robots=2)
    with running(config, tmp_path / "logs") as (bringup, _probe, executor):

        def two_each():
            names = [b.name for b in bags(out)]
            return all(sum(n.startswith(f"robot_{r}_") for n in names) >= 2 for r in (0, 1))

        spin_until(executor, bringup, two_each, TIMEOUT, "two episodes per robot")
        pids = [p.pid for _, p in bringup.procs]
    assert all(p.poll() is not None for _, p in bringup.procs)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")], "node processes left behind"
    loaded = load_episodes(out, progress=False)
    assert loaded.skipped == []
    assert {e.meta.namespace for e in loaded.episodes} == {"/robot_0", "/robot_1"}
    for ep in loaded.episodes:
        assert ep.meta.length == 15 and ep.meta.termination == "max_steps"
        assert ep.frames["front"].shape == (16, 96, 96, 3) and ep.actions.shape == (15, 2)
        assert ep.action_tokens.shape == (15, 4) and ep.effector.shape == (16, 2)
        assert ep.meta.seed is not None and ep.meta.instruction and ep.meta.success is not None
    seeds = sorted(e.meta.seed for e in loaded.episodes)
    assert seeds[0] < 100_000 <= seeds[-1]  # robot_1's seeds are offset


def test_one_policy_server_and_one_reward_server_serve_two_robots_in_batches_and_hot_reload_both(
    tiny_checkpoints, tmp_path
):
    out = tmp_path / "episodes"
    nodes = practice_nodes(tiny_checkpoints[0], out, max_steps=60)
    config = graph(nodes, robots=2, batch_policy=True, batch_reward=True)
    assert [s.name for s in node_specs(config) if s.serves] == ["policy_server", "reward_server"]
    with running(config, tmp_path / "logs") as (bringup, probe, executor):
        versions: dict[str, list] = {"/robot_0": [], "/robot_1": []}
        distances: dict[str, list] = {"/robot_0": [], "/robot_1": []}
        for ns, seen in versions.items():
            probe.create_subscription(
                String,
                f"{ns}/policy/version",
                lambda m, seen=seen: seen.append(json.loads(m.data)["version"]),
                LATCHED_QOS,
            )
            probe.create_subscription(
                Float32, f"{ns}/reward/steps_to_go", lambda m, ns=ns: distances[ns].append(m.data), DEEP
            )

        def episodes_each(n):
            names = [b.name for b in bags(out)]
            return all(sum(name.startswith(f"robot_{r}_") for name in names) >= n for r in (0, 1))

        spin_until(executor, bringup, lambda: episodes_each(2), TIMEOUT, "two episodes per robot")
        announce = probe.create_publisher(String, "/sefm/policy_checkpoint", LATCHED_QOS)
        announce.publish(String(data=json.dumps({"path": str(tiny_checkpoints[1]), "version": 2})))
        both = lambda: all(seen and seen[-1] == 2 for seen in versions.values())  # noqa: E731
        spin_until(executor, bringup, both, 30, "both robots acting with version 2")
        spin_until(executor, bringup, lambda: episodes_each(3), TIMEOUT, "an episode each after the reload")
    log = log_text(bringup, "policy_server")
    assert log.count("hot-reloaded policy version 2") == 1  # one model for both robots, loaded once
    # A robot acts alone while the other resets; while both run, their frames share a pass.
    together = re.findall(r"frames of 2 robots answered in batches of .*2: (\d+)", log)
    assert together and int(together[-1]) >= 10
    scored = log_text(bringup, "reward_server")
    assert re.search(r"frames of 2 robots scored in batches of ", scored), scored[-2000:]
    assert all(len(ds) >= 60 and all(np.isfinite(ds)) for ds in distances.values())  # each robot's own d
    loaded = load_episodes(out, progress=False)
    assert loaded.skipped == [] and {e.meta.namespace for e in loaded.episodes} == {"/robot_0", "/robot_1"}
    assert all(ep.meta.length == 60 and ep.action_tokens.shape == (60, 4) for ep in loaded.episodes)


def test_detected_success_ends_the_episode(tiny_checkpoints, tmp_path):
    out = tmp_path / "episodes"
    # d of an untrained model is ~50 steps; a threshold above it makes every frame a success.
    config = graph(practice_nodes(tiny_checkpoints[0], out, max_steps=50, threshold=99.0))
    sim_says = {}
    with running(config, tmp_path / "logs") as (bringup, probe, executor):
        probe.create_subscription(
            Header, f"/robot_0/{SIM_SUCCESS}", lambda m: sim_says.update({stamp_ns(m): VERDICTS[m.frame_id]}), DEEP
        )
        spin_until(executor, bringup, lambda: len(bags(out)) >= 2, TIMEOUT, "two episodes")
    episodes = load_episodes(out, progress=False).episodes
    assert episodes and all(e.meta.termination == "success" and e.meta.extra["detected_success"] for e in episodes)
    assert all(1 <= e.meta.length < 50 for e in episodes)
    # The label is the sim's verdict on the final frame, not the detector's word (which is always
    # "success" here); an untrained policy rarely solves a board, but sometimes does.
    heard = [e for e in episodes if int(e.stamps_ns[-1]) in sim_says]
    assert heard, "the probe heard no episode's final verdict"
    assert all(e.meta.success is sim_says[int(e.stamps_ns[-1])] for e in heard)


def test_estop_stops_commands_within_one_control_period(tiny_checkpoints, tmp_path):
    nodes = {
        "sim_bridge": {"mode": "realtime", "control_hz": 10.0},
        "policy": {"checkpoint": str(tiny_checkpoints[0]), "actuation_enabled": True, "temperature": 2.0},
        "episode_manager": {"max_steps": 10_000, "wait_for_topics": ["policy/command"]},
    }
    with running(graph(nodes), tmp_path / "logs") as (bringup, probe, executor):
        received = []
        probe.create_subscription(
            TwistStamped, "/robot_0/policy/command", lambda m: received.append((time.monotonic(), m)), DEEP
        )
        estop = probe.create_publisher(Bool, "/robot_0/estop", RELIABLE_QOS)
        moving = lambda: sum(abs(m.twist.linear.x) + abs(m.twist.linear.y) > 0 for _, m in received) >= 5  # noqa: E731
        spin_until(executor, bringup, moving, TIMEOUT, "the policy to move the robot")
        t0 = time.monotonic()
        estop.publish(Bool(data=True))
        spin_until(executor, bringup, lambda: time.monotonic() > t0 + 2.0, 10, "two seconds of e-stop")
    after = [(t, m) for t, m in received if t > t0]
    assert after, "no command after the e-stop"
    stopped_by = min(t for t, m in after if m.twist.linear.x == 0 and m.twist.linear.y == 0)
    assert stopped_by - t0 < 0.1  # one control period at 10 Hz
    late = [m for t, m in after if t > t0 + 0.1]
    assert late and all(m.twist.linear.x == 0 and m.twist.linear.y == 0 for m in late)


def test_hot_reload_swaps_weights_without_missing_frames_and_refuses_a_corrupt_checkpoint(tiny_checkpoints, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoints[1], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    nodes = {
        # Holding means no command for 2 × step_timeout_s: a policy stalled by its reload, not a busy CPU.
        "sim_bridge": {"mode": "lockstep", "step_timeout_s": 3.0},
        "policy": {"checkpoint": str(tiny_checkpoints[0]), "actuation_enabled": True},
        "episode_manager": {"max_steps": 10_000, "wait_for_topics": ["policy/command"]},
    }
    with running(graph(nodes), tmp_path / "logs") as (bringup, probe, executor):
        frames, answered = [], set()
        probe.create_subscription(Image, "/robot_0/camera/front/image_raw", lambda m: frames.append(stamp_ns(m)), DEEP)
        probe.create_subscription(TwistStamped, "/robot_0/policy/command", lambda m: answered.add(stamp_ns(m)), DEEP)
        announce = probe.create_publisher(String, "/sefm/policy_checkpoint", LATCHED_QOS)
        spin_until(executor, bringup, lambda: len(answered) >= 20, TIMEOUT, "the loop to run")
        first = len(frames)
        announce.publish(String(data=json.dumps({"path": str(broken), "version": 9})))
        spin_until(executor, bringup, lambda: "rejected checkpoint" in log_text(bringup, "policy"), 30, "rejection")
        announce.publish(String(data=json.dumps({"path": str(tiny_checkpoints[1]), "version": 2})))
        reloaded = lambda: "hot-reloaded policy version 2" in log_text(bringup, "policy")  # noqa: E731
        spin_until(executor, bringup, reloaded, 30, "reload")
        mark = len(frames)
        # 21: the window leaves out the newest frame, and a reload that holds the loop adds none before mark.
        spin_until(executor, bringup, lambda: len(frames) >= mark + 21, 30, "acting after the reload")
        window = frames[first:-1]  # the newest frame may still be awaiting its command
        settle = time.monotonic() + 1.0  # commands can reach the probe after the frames they caused
        spin_until(executor, bringup, lambda: time.monotonic() > settle, 10, "late commands")
    assert len(window) >= 20 and [s for s in window if s not in answered] == []  # no frame missed
    assert "holding" not in log_text(bringup, "sim_bridge")  # lockstep never waited for a command


def test_graph_bags_carry_every_topic(tiny_checkpoints, tmp_path):
    from rosbags.rosbag2 import Reader

    out = tmp_path / "episodes"
    config = graph(practice_nodes(tiny_checkpoints[0], out, max_steps=5))
    with running(config, tmp_path / "logs") as (bringup, _probe, executor):
        spin_until(executor, bringup, lambda: len(bags(out)) >= 1, TIMEOUT, "an episode")
    with Reader(bags(out)[0]) as reader:
        topics = {t.removeprefix("/robot_0/") for t in reader.topics}
        events = [
            json.loads(TYPESTORE.deserialize_cdr(raw, c.msgtype).data)
            for c, _, raw in reader.messages([c for c in reader.connections if c.topic.endswith("events")])
        ]
    assert {"camera/front/image_raw", "effector_pose", "policy/action_tokens", "policy/command"} <= topics
    assert {"instruction", "episode/events"} <= topics
    assert [e["event"] for e in events][:1] == ["start"] and events[-1]["event"] == "end"
    assert np.isfinite(events[-1]["metadata"]["length"])


def test_fleet_status_lists_every_robot(tiny_checkpoints, tmp_path):
    import subprocess
    import sys

    nodes = practice_nodes(tiny_checkpoints[0], tmp_path / "episodes", max_steps=5)
    with running(graph(nodes, robots=2), tmp_path / "logs") as (bringup, _probe, executor):
        spin_until(executor, bringup, lambda: len(bags(tmp_path / "episodes")) >= 2, TIMEOUT, "episodes")
        out = subprocess.run(
            [sys.executable, "-m", "sefm.cli", "fleet", "status", "--once", "4"],
            env={**bringup.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    assert "/robot_0" in out and "/robot_1" in out and "max_steps @ 5" in out


@pytest.mark.parametrize("stop_with", ["SIGINT", "SIGTERM"])
def test_sefm_bringup_stops_every_node_on_ctrl_c_or_sigterm(tiny_checkpoints, tmp_path, stop_with):
    """Started as a shell's background job (SIGINT ignored from the start, as bash does), it still
    stops on Ctrl-C; a service manager's SIGTERM stops it too, leaving no node behind."""
    import signal
    import subprocess
    import sys

    import yaml

    out = tmp_path / "episodes"
    config = tmp_path / "graph.yaml"
    nodes = practice_nodes(tiny_checkpoints[0], out, max_steps=5)
    config.write_text(yaml.safe_dump({"fleet": {"robots": 2}, "nodes": nodes}))
    env = {**os.environ, "ROS_DOMAIN_ID": str(200 + os.getpid() % 30)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sefm.cli", "bringup", str(config), "--log-dir", str(tmp_path / "logs")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    deadline = time.monotonic() + TIMEOUT
    while len({b.name[:7] for b in bags(out)}) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    children = children_of(proc.pid)
    assert len(children) == 10 and {b.name[:7] for b in bags(out)} == {"robot_0", "robot_1"}
    proc.send_signal(getattr(signal, stop_with))
    assert proc.wait(timeout=30) == 0, proc.stdout.read()
    time.sleep(0.5)
    assert [pid for pid in children if os.path.exists(f"/proc/{pid}")] == []
