from pathlib import Path

import numpy as np
import pytest
import yaml

from sefm_interfaces.typed_config import ConfigError, parse_config
from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.config import EFMConfig
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.rig_import import RigMap, import_bags
from sefm_trainer.rig_recording import Teleop, leader_targets, write_aloha_rig, write_language_table_rig
from sefm_trainer.sft import SFTConfig, train_sft

MAPS = Path(__file__).resolve().parents[3] / "config" / "rig_maps"


def rig_map(name: str, **changes) -> RigMap:
    """A shipped map, with ``changes`` to its keys, validated as the command line does."""
    return parse_config(yaml.safe_load((MAPS / f"{name}.yaml").read_text()) | changes, RigMap, name)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_language_table_teleop_bag_becomes_one_episode_per_marked_stretch_with_the_commanded_displacements(
    tmp_path, storage
):
    teleop = Teleop()
    bag = write_language_table_rig(tmp_path / "session", teleop, storage=storage)
    summary = import_bags([bag], rig_map("language_table"), tmp_path / "episodes", progress=False)
    assert summary["problems"] == [] and summary["episodes"] == 2
    episodes = load_episodes(tmp_path / "episodes", progress=False).episodes
    for episode, (start, end) in zip(sorted(episodes, key=lambda e: e.path.name), teleop.episodes, strict=True):
        assert episode.meta.instruction == "push the red block to the left" and episode.meta.success is True
        # Steps every 0.1 s from the first moment camera, pose and command have all spoken.
        assert np.allclose(np.diff(episode.stamps_ns), 100_000_000)
        assert start <= episode.stamps_ns[0] / 1e9 <= start + 0.05 and episode.length == pytest.approx(
            (end - start) / 0.1, abs=2
        )
        assert episode.frames["front"].shape[1:] == (96, 128, 3)
        # Each action is what the 50 Hz velocity stream commands over its 0.1 s step.
        t = episode.stamps_ns[:-1] / 1e9
        expected = np.stack([np.mean([teleop.velocity(s) for s in np.arange(a, a + 0.1, 0.02)], 0) * 0.1 for a in t])
        assert np.abs(episode.actions - expected).max() < 2e-3
        assert episode.effector is not None and episode.effector[0, 0] == pytest.approx(0.1 * t[0], abs=0.003)
    assert summary["steps"] == sum(e.length for e in episodes)


def test_imported_episodes_train_stage_1(tmp_path):
    bag = write_language_table_rig(tmp_path / "session", Teleop(episodes=tuple((a, a + 2.0) for a in range(0, 24, 3))))
    import_bags([bag], rig_map("language_table"), tmp_path / "episodes", progress=False)
    cfg = SFTConfig(
        data=str(tmp_path / "episodes"), out=str(tmp_path / "run"), steps=2, batch_size=6, val_every=2,
        checkpoint_every=2, val_samples=4, val_fraction=0.25,
    )  # fmt: skip
    best = train_sft(cfg)
    assert np.isfinite(best["bc"]["loss"]) and (tmp_path / "run" / "best_bc").exists()


def test_imported_aloha_episodes_train_stage_1(tmp_path):
    bag = write_aloha_rig(tmp_path / "aloha", seconds=6.0, pause=(2.5, 4.0))
    import_bags([bag], rig_map("interbotix_aloha"), tmp_path / "episodes", progress=False)
    cfg = SFTConfig(
        data=str(tmp_path / "episodes"), out=str(tmp_path / "run"), steps=2, batch_size=4, val_every=2,
        checkpoint_every=2, val_samples=2, val_fraction=0.5, objectives=["bc", "steps"],
        model=EFMConfig(embodiment="aloha"),
    )  # fmt: skip
    best = train_sft(cfg)
    assert np.isfinite(best["bc"]["loss"])
    assert load_checkpoint(tmp_path / "run" / "best_bc").config.embodiment == "aloha"


def test_a_bag_without_a_mapped_topic_is_named_and_the_others_still_import(tmp_path):
    good = write_language_table_rig(tmp_path / "good", Teleop())
    blind = write_language_table_rig(tmp_path / "blind", Teleop(), drop=("/camera/color/image_raw/compressed",))
    summary = import_bags([blind, good], rig_map("language_table"), tmp_path / "episodes", progress=False)
    assert summary["episodes"] == 2
    assert summary["problems"] == [f"{blind}: mapped topic /camera/color/image_raw/compressed is not in the recording"]


def test_a_topic_of_the_wrong_type_and_a_stretch_shorter_than_a_step_are_reported(tmp_path):
    bag = write_language_table_rig(tmp_path / "s", Teleop(episodes=((0.5, 3.0), (4.0, 4.05))))
    wrong = rig_map("language_table", state=[{"topic": "/servo_node/delta_twist_cmds"}])
    summary = import_bags([bag], wrong, tmp_path / "a", progress=False)
    assert "topic /servo_node/delta_twist_cmds is geometry_msgs/msg/TwistStamped" in summary["problems"][0]
    summary = import_bags([bag], rig_map("language_table"), tmp_path / "b", progress=False)
    assert summary["episodes"] == 1
    assert summary["problems"] == [f"{bag} episode 1: shorter than one step (0.05 s of all streams together)"]


def test_an_aloha_session_is_cut_at_the_pause_into_chunks_of_the_leader_arms_targets(tmp_path):
    bag = write_aloha_rig(tmp_path / "aloha", seconds=6.0, pause=(2.5, 4.0))
    summary = import_bags([bag], rig_map("interbotix_aloha"), tmp_path / "episodes", progress=False)
    assert summary["problems"] == [] and summary["episodes"] == 2
    first, second = sorted(load_episodes(tmp_path / "episodes", progress=False).episodes, key=lambda e: e.path.name)
    assert first.actions.shape[1:] == (5, 14) and first.joint_states.shape[1] == 14
    assert np.allclose(np.diff(first.stamps_ns), 500_000_000)  # a step is a chunk of five 10 Hz periods
    t = first.stamps_ns[0] / 1e9
    for j in range(5):  # the newest leader message at or before each of the chunk's periods
        sent = np.floor((t + 0.1 * (j + 1)) * 50 + 1e-6) / 50
        assert np.allclose(first.actions[0, j], leader_targets(sent), atol=1e-9)
    assert np.allclose(first.joint_states[0], 0.9 * leader_targets(np.floor(t * 50 + 1e-6) / 50), atol=1e-9)
    assert second.stamps_ns[0] / 1e9 >= 4.0 and set(first.frames) == {"top", "angle", "left_wrist", "right_wrist"}
    assert first.frames["top"].shape[1:] == (32, 64, 3)
    # The cameras publish bgr8: the block is red in the imported rgb8 frames.
    block = first.frames["top"][0].reshape(-1, 3)
    assert (block[:, 0] > 150).any() and (block[:, 1] < 80).any()


def test_a_map_that_names_the_wrong_cameras_or_no_instruction_is_refused_by_key():
    with pytest.raises(ConfigError, match="cameras"):
        rig_map("language_table", cameras={"top": "/c"})
    with pytest.raises(ConfigError, match="instruction"):
        rig_map("language_table", instruction_topic=None)
