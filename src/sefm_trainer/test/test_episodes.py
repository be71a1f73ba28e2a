import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sefm_interfaces.episode_protocol import EpisodeMeta
from sefm_sim_bridge.demonstrator import PushDemonstrator
from sefm_sim_bridge.language_table import LanguageTableEnv
from sefm_trainer.bag_reader import (
    NotAnEpisode,
    acted_frames,
    load_episodes,
    nearest_parts,
    read_episode,
    select_fraction,
)
from sefm_trainer.bag_writer import EpisodeWriter, episode_bag_name, recorded_start_ns
from sefm_trainer.datagen import DatagenConfig, generate, record_demonstration
from sefm_trainer.dataset import StepIndex


def test_bag_round_trip_returns_the_arrays_that_were_recorded(tmp_path):
    env = LanguageTableEnv("block2block")
    demo = PushDemonstrator()
    obs, _ = env.reset(seed=4)
    demo.reset(4)
    frames, effector, actions = [obs["rgb"]], [obs["effector"]], []
    done = False
    while not done:
        a = demo.act(env)
        actions.append(a)
        obs, _, term, trunc, info = env.step(a)
        frames.append(obs["rgb"])
        effector.append(obs["effector"])
        done = term or trunc
    record_demonstration(env, demo, 4, tmp_path, DatagenConfig())  # replays the same seed
    env.close()
    ep = read_episode(tmp_path / "block2block_000004")
    assert np.array_equal(ep.frames["front"], np.stack(frames))
    assert np.array_equal(ep.effector, np.stack(effector))
    np.testing.assert_allclose(ep.actions, np.stack(actions), rtol=0, atol=1e-12)  # stored as m/s, read back in m
    assert ep.action_tokens.shape == (len(actions), 4)
    assert ep.meta.length == len(actions) and ep.meta.success == info["success"] and ep.meta.seed == 4
    assert ep.meta.termination == ("success" if info["success"] else "max_steps")
    assert np.all(np.diff(ep.stamps_ns) == 100_000_000)


def test_a_stop_answering_a_frame_reads_as_holding_the_joints_where_they_were(tmp_path):
    names, chunk = [f"j{i}" for i in range(14)], np.full((5, 14), 0.3)
    writer = EpisodeWriter(tmp_path, "aloha_stop")
    for k in range(3):
        stamp = 1_000_000_000 * (k + 1)
        for cam in ("top", "angle", "left_wrist", "right_wrist"):
            writer.image(cam, stamp, np.zeros((8, 8, 3), np.uint8))
        writer.joint_state(stamp, names, np.full(14, 0.1 * k))
        if k < 2:  # the second frame is answered by an empty trajectory: the policy's stop
            writer.joint_command(stamp + 1000, stamp, names, chunk if k == 0 else np.zeros((0, 14)), 0.1)
    meta = EpisodeMeta(instruction="insert the peg", embodiment="aloha", length=2, success=None, termination="abort",
                       cameras=["top", "angle", "left_wrist", "right_wrist"])  # fmt: skip
    writer.commit(meta, 4_000_000_000)
    episode = read_episode(tmp_path / "aloha_stop")
    assert np.array_equal(episode.actions[0], chunk)
    assert np.array_equal(episode.actions[1], np.full((5, 14), 0.1))  # held at frame 1's joints


def test_metadata_is_in_the_bag_metadata_file(demo_episodes):
    bag = sorted(demo_episodes.iterdir())[0]
    text = (bag / "metadata.yaml").read_text()
    assert "sefm.episode" in text and "/robot_0/episode/events" in text and "storage_identifier: mcap" in text


def test_truncated_bag_is_skipped_with_its_path_and_the_rest_load(episode_folder):
    victim = sorted(episode_folder.iterdir())[1]
    mcap = next(victim.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    loaded = load_episodes(episode_folder, progress=False)
    assert len(loaded.episodes) == 2
    assert [p for p, _ in loaded.skipped] == [victim]
    assert "unreadable bag" in loaded.skipped[0][1] or "steps" in loaded.skipped[0][1]


def test_foreign_rosbag2_bags_are_reported_and_episodes_beside_them_still_load(episode_folder, fixtures):
    for name in ("sqlite3_talker", "mcap_talker", "mcap_cdr_test"):
        shutil.copytree(fixtures / name, episode_folder / name)
    loaded = load_episodes(episode_folder, progress=False)
    assert len(loaded.episodes) == 3
    reasons = {p.name: r for p, r in loaded.skipped}
    assert set(reasons) == {"sqlite3_talker", "mcap_talker", "mcap_cdr_test"}
    assert "missing topics" in reasons["sqlite3_talker"] and "/topic" in reasons["sqlite3_talker"]
    assert "test_msgs/msg/BasicTypes" in reasons["mcap_cdr_test"]


def test_sqlite3_bags_are_read(fixtures):
    with pytest.raises(NotAnEpisode, match="missing topics"):  # opened and inspected, not rejected as unreadable
        read_episode(fixtures / "sqlite3_talker")


def test_crash_mid_write_leaves_no_episode(tmp_path):
    with pytest.raises(RuntimeError), EpisodeWriter(tmp_path, "episode_a") as writer:
        writer.image("front", 0, np.zeros((8, 8, 3), np.uint8))
        raise RuntimeError("robot unplugged")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writer_leaves_only_a_hidden_folder_that_loading_ignores(tmp_path, demo_episodes):
    shutil.copytree(sorted(demo_episodes.iterdir())[0], tmp_path / "done")
    writer = EpisodeWriter(tmp_path, "unfinished")  # never committed: as if the process died here
    writer.image("front", 0, np.zeros((8, 8, 3), np.uint8))
    assert not (tmp_path / "unfinished").exists()
    loaded = load_episodes(tmp_path, progress=False)
    assert [e.path.name for e in loaded.episodes] == ["done"] and loaded.skipped == []
    writer.abort()


def test_bag_written_from_rclpy_raw_cdr_reads_back(tmp_path):
    serialization = pytest.importorskip("rclpy.serialization")
    from geometry_msgs.msg import TwistStamped
    from sensor_msgs.msg import Image

    stamps = [1_000_000_000, 1_100_000_000]
    frames = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    meta = EpisodeMeta("push the red moon to the blue cube", "language_table", 1, True, "success")
    with EpisodeWriter(tmp_path, "from_dds") as writer:
        for stamp, frame in zip(stamps, frames, strict=True):
            img = Image(height=6, width=5, encoding="rgb8", step=15, data=frame.tobytes())
            img.header.stamp.sec, img.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            writer.write_raw(
                "camera/front/image_raw", "sensor_msgs/msg/Image", stamp, serialization.serialize_message(img)
            )
        cmd = TwistStamped()
        cmd.header.stamp.sec, cmd.header.stamp.nanosec = divmod(stamps[0], 1_000_000_000)
        cmd.twist.linear.x, cmd.twist.linear.y = 0.3, -0.2
        writer.write_raw(
            "policy/command", "geometry_msgs/msg/TwistStamped", stamps[0] + 1, serialization.serialize_message(cmd)
        )
        writer.commit(meta, stamps[1] + 1)
    ep = read_episode(tmp_path / "from_dds")
    assert np.array_equal(ep.frames["front"], frames)
    np.testing.assert_allclose(ep.actions, [[0.03, -0.02]])
    assert ep.meta == meta


def test_metadata_falls_back_to_the_end_event(episode_folder):
    bag = sorted(episode_folder.iterdir())[0]
    meta_file = bag / "metadata.yaml"
    text = meta_file.read_text()
    start = text.index("  custom_data:")
    end = text.index("  duration:")
    meta_file.write_text(text[:start] + text[end:])
    assert read_episode(bag).meta.seed == 0


def test_data_fractions_are_deterministic_and_nested():
    names = [f"ep{i:04d}" for i in range(1000)]
    ten, twenty, eighty = (select_fraction(names, f, seed=1) for f in (0.1, 0.2, 0.8))
    assert (len(ten), len(twenty), len(eighty)) == (100, 200, 800)
    assert set(ten) <= set(twenty) <= set(eighty)
    assert ten == select_fraction(list(reversed(names)), 0.1, seed=1)
    assert ten != select_fraction(names, 0.1, seed=2)
    with pytest.raises(ValueError, match="fraction"):
        select_fraction(names, 1.5)


def test_load_with_fraction_counts_only_episodes(episode_folder, fixtures):
    shutil.copytree(fixtures / "mcap_talker", episode_folder / "mcap_talker")
    loaded = load_episodes(episode_folder, fraction=0.34, progress=False)
    assert len(loaded.episodes) == 1 and len(loaded.skipped) == 1


def test_steps_align_frames_previous_frames_and_steps_to_go(demo_episodes):
    eps = load_episodes(demo_episodes, progress=False).episodes
    steps = StepIndex(eps)
    assert len(steps) == sum(e.length for e in eps)
    first, second = steps[0], steps[1]
    (now0, prev0), (_, prev1) = first.observation.images, second.observation.images
    assert np.array_equal(prev0, now0) and np.array_equal(prev1, now0)
    last = steps[eps[0].length - 1]
    assert (last.T - last.t) == 1 and last.instruction == eps[0].meta.instruction
    np.testing.assert_array_equal(second.action, eps[0].actions[1])


def test_demonstrations_record_where_every_object_is_on_every_frame(demo_episodes):
    from sefm_sim_bridge.envs import make_env
    from sefm_sim_bridge.tasks import BLOCK2BLOCK_DISTANCE

    episode = sorted(load_episodes(demo_episodes, progress=False).episodes, key=lambda e: e.path.name)[0]
    env = make_env("block2block", render_images=False)
    env.reset(seed=episode.meta.seed)
    start = env.object_positions()
    env.close()
    assert set(episode.objects) == set(start) and len(start) == 8
    assert all(np.allclose(episode.objects[name][0], xy) for name, xy in start.items())
    assert all(v.shape == (episode.length + 1, 2) for v in episode.objects.values())
    obj, target = episode.meta.extra["obj"], episode.meta.extra["target"]
    assert episode.meta.success and obj in episode.meta.instruction and target in episode.meta.instruction
    assert np.linalg.norm(episode.objects[obj][0] - episode.objects[target][0]) > BLOCK2BLOCK_DISTANCE
    assert np.linalg.norm(episode.objects[obj][-1] - episode.objects[target][-1]) <= BLOCK2BLOCK_DISTANCE


def test_a_demonstration_held_past_its_goal_keeps_its_path_and_teaches_its_done_frames_as_zero(tmp_path):
    from sefm_sim_bridge.tasks import Task

    generate(2, tmp_path / "plain", DatagenConfig(), seed=3)
    generate(2, tmp_path / "held", DatagenConfig(hold_steps=4), seed=3)
    plain = sorted(load_episodes(tmp_path / "plain", progress=False).episodes, key=lambda e: e.path.name)
    held = sorted(load_episodes(tmp_path / "held", progress=False).episodes, key=lambda e: e.path.name)
    for before, after in zip(plain, held, strict=True):
        goal = after.goal_at
        assert goal == before.length and before.goal_at == before.last_done == before.length
        np.testing.assert_array_equal(after.actions[:goal], before.actions)
        assert after.length == goal + min(4, after.last_done - goal + 1)  # it stops at the step that undoes the goal
        extra = after.meta.extra
        task = Task("block2block", after.meta.instruction, extra["obj"], extra["target"])
        done = [task.success({n: xy[t] for n, xy in after.objects.items()}) for t in range(after.length + 1)]
        assert not any(done[:goal]) and all(done[goal : after.last_done + 1])
        steps = [s for s in StepIndex([after]) if s.t >= goal - 1]
        assert [s.steps_to_go for s in steps] == [1] + [0] * (after.length - goal)
    with pytest.raises(ValueError, match="hold_steps"):
        DatagenConfig(task_family="insertion", hold_steps=2)


def test_datagen_in_parallel_resumes_without_rewriting(tmp_path):
    summary = generate(3, tmp_path, DatagenConfig(), seed=10, workers=2)
    assert summary["written"] == 3 and summary["kept"] == 0
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = generate(4, tmp_path, DatagenConfig(), seed=10, workers=1)
    assert again["written"] == 1 and again["kept"] == 3
    assert all(tmp_path.joinpath(n).stat().st_mtime_ns == m for n, m in before.items())
    metas = [json.loads(e.meta.to_json()) for e in load_episodes(tmp_path, progress=False).episodes]
    assert sorted(m["seed"] for m in metas) == [10, 11, 12, 13]


def test_demonstrations_from_held_out_seeds_fit_ros_stamps_and_out_of_range_seeds_are_refused(tmp_path):
    from sefm_trainer.datagen import MAX_SEED

    summary = generate(1, tmp_path, DatagenConfig(), seed=1_000_000)  # where evaluation seeds start
    assert summary["written"] == 1
    ep = read_episode(tmp_path / "block2block_1000000")
    assert ep.meta.seed == 1_000_000 and ep.stamps_ns[-1] // 1_000_000_000 < 2**31
    with pytest.raises(ValueError, match=r"seeds must lie in \[0, "):
        generate(2, tmp_path / "late", DatagenConfig(), seed=MAX_SEED)
    assert not (tmp_path / "late").exists()


@pytest.mark.parametrize("where", [0.02, 0.5, 0.98])
def test_a_bag_whose_bytes_changed_is_skipped_with_its_path(episode_folder, where):
    victim = sorted(episode_folder.iterdir())[0]
    assert (victim / "SHA256SUMS").is_file()
    mcap = next(victim.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    at = int(len(data) * where)
    data[at : at + 16] = bytes(b ^ 0x5A for b in data[at : at + 16])
    mcap.write_bytes(bytes(data))
    loaded = load_episodes(episode_folder, progress=False)
    assert len(loaded.episodes) == 2
    assert loaded.skipped == [(victim, f"{mcap.name} does not match its SHA-256 in SHA256SUMS: its bytes changed")]


def live_bag(out, verdicts: dict[int, str]):
    """A bag as the recorder writes it: 2 actions, a frame past the episode's end, the sim's
    verdicts for the frames in ``verdicts`` (frame index -> frame_id) and no success in the metadata."""
    from sefm_interfaces.topics import SIM_SUCCESS
    from sefm_trainer.bag_writer import header

    stamps = [10**9 + k * 10**8 for k in range(4)]
    with EpisodeWriter(out, "robot_0_live") as w:
        for k, stamp in enumerate(stamps):
            w.effector_pose(stamp, np.zeros(2))
            w.image("front", stamp, np.full((8, 8, 3), k, np.uint8))
            if k in verdicts:
                w.write(SIM_SUCCESS, header(stamp, verdicts[k]), stamp + 1)
            if k < 2:
                w.planar_command(stamp + 2, stamp, np.array([0.01, 0.0]), 0.1)
        meta = EpisodeMeta(instruction="push the red moon to the blue cube", embodiment="language_table", length=2,
                           success=None, termination="success", extra={"detected_success": True})  # fmt: skip
        return read_episode(w.commit(meta, stamps[-1] + 5))


def test_ground_truth_is_the_sims_verdict_on_the_final_frame_matched_by_stamp(tmp_path):
    ep = live_bag(tmp_path / "a", {0: "failure", 1: "failure", 2: "success", 3: "failure"})
    assert ep.length == 2 and ep.meta.success is True
    ep = live_bag(tmp_path / "b", {0: "failure", 1: "success", 3: "success"})  # the final frame's never landed
    assert ep.meta.success is None and ep.meta.extra["detected_success"] is True


def test_each_action_is_the_first_command_answering_its_frame_and_needs_the_frame_after_it():
    # Frames at 10, 20, 30; a watchdog's second answer to frame 10 is not an action.
    assert acted_frames([10, 20, 30], [10, 12, 25], 2) == {0: 0, 1: 2}
    with pytest.raises(ValueError, match="frame after the last action"):
        acted_frames([10, 20], [10, 25], 2)
    with pytest.raises(ValueError, match="holds 1 actions"):
        acted_frames([10, 20, 30], [10, 12], 2)


def test_a_moments_parts_are_the_nearest_within_the_slop_and_exact_without_one():
    parts = {101: "a", 198: "b", 260: "c"}
    assert nearest_parts(parts, [100, 200, 300], slop_ns=5) == {100: "a", 200: "b"}
    assert nearest_parts(parts, [101, 200], slop_ns=0) == {101: "a"}


def test_a_bag_name_gives_back_when_its_episode_started_for_any_namespace():
    for namespace in ("/robot_0", "/fleet/arm-2", "/"):
        name = episode_bag_name(namespace, 1796157949990131672, 7)
        assert name.endswith("_00007") and recorded_start_ns(Path("/x") / name) == 1796157949990131672
