"""ALOHA insertion through the same pipeline: demonstration bags -> Stage 1 -> Stage 2, at smoke scale."""

import json

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.config import EFMConfig
from sefm_reward.detector import StepsToGoDetector
from sefm_sim_bridge.aloha import CAMERAS, JOINT_NAMES, START_COMMAND, AlohaInsertionEnv
from sefm_sim_bridge.aloha_demonstrator import InsertionDemonstrator
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.bag_writer import TYPESTORE
from sefm_trainer.datagen import DatagenConfig, generate
from sefm_trainer.dataset import StepIndex
from sefm_trainer.evaluate import evaluate
from sefm_trainer.sft import SFTConfig, train_sft
from sefm_trainer.stage2 import Stage2Config, self_improve


@pytest.fixture(scope="module")
def aloha_episodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("aloha")
    summary = generate(4, out, DatagenConfig(task_family="insertion", max_steps=25), seed=0, workers=1)
    assert summary["written"] == 4
    return out


@pytest.fixture(scope="module")
def stage1(aloha_episodes, tmp_path_factory):
    out = tmp_path_factory.mktemp("aloha_sft")
    cfg = SFTConfig(data=str(aloha_episodes), out=str(out), steps=4, batch_size=4, objectives=["bc", "steps"],
                    val_every=2, val_samples=8, val_fraction=0.25, model=EFMConfig(embodiment="aloha"))  # fmt: skip
    train_sft(cfg)
    return out


def test_demonstration_bags_hold_joint_chunks_joint_states_and_four_cameras(aloha_episodes):
    path = aloha_episodes / "insertion_000001"
    with Reader(path) as reader:
        types = {t: i.msgtype for t, i in reader.topics.items()}
        command = next(c for c in reader.connections if c.topic == "/robot_0/policy/command")
        first = TYPESTORE.deserialize_cdr(next(reader.messages(connections=[command]))[2], command.msgtype)
    assert types["/robot_0/policy/command"] == "trajectory_msgs/msg/JointTrajectory"
    assert types["/robot_0/joint_states"] == "sensor_msgs/msg/JointState"
    assert {f"/robot_0/camera/{c}/image_raw" for c in CAMERAS} <= set(types)
    assert list(first.joint_names) == list(JOINT_NAMES) and len(first.points) == 5
    assert [p.time_from_start.nanosec for p in first.points] == [100_000_000 * k for k in range(1, 6)]

    # The bag replays the demonstrator: the same seed gives the same commands.
    (ep,) = [e for e in load_episodes(aloha_episodes, progress=False).episodes if e.path == path]
    env, demo = AlohaInsertionEnv(max_steps=25, render_images=False), InsertionDemonstrator()
    env.reset(seed=1)
    demo.reset(1)
    np.testing.assert_allclose(ep.actions[0], demo.act(env))
    env.close()
    assert ep.meta.embodiment == "aloha" and ep.meta.success
    assert ep.actions.shape == (ep.length, 5, 14) and ep.joint_states.shape == (ep.length + 1, 14)
    assert ep.action_tokens.shape == (ep.length, 70)


def test_steps_show_the_model_four_cameras_and_the_joints(aloha_episodes):
    steps = StepIndex(load_episodes(aloha_episodes, progress=False).episodes)
    step = steps[2]
    ep = steps.episodes[step.episode]
    assert len(step.observation.images) == 4
    np.testing.assert_array_equal(step.observation.images[2], ep.frames["left_wrist"][step.t])
    np.testing.assert_array_equal(step.observation.state, ep.joint_states[step.t])


def test_stage1_normalises_joints_with_the_data_range(stage1, aloha_episodes):
    model = load_checkpoint(stage1 / "best_bc")
    assert model.config.embodiment == "aloha"
    eps = load_episodes(aloha_episodes, progress=False).episodes
    values = np.concatenate([v for e in eps for v in (e.actions.reshape(-1, 14), e.joint_states)])
    low, high = np.array(model.config.joint_low), np.array(model.config.joint_high)
    assert (low >= values.min(axis=0) - 0.011).all() and (high <= values.max(axis=0) + 0.011).all()
    assert (low < START_COMMAND).all() and (high > START_COMMAND).all()
    metrics = [json.loads(line) for line in (stage1 / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(m["bc/loss"]) for m in metrics if "bc/loss" in m)


def test_stage1_refuses_instruction_prediction_for_aloha(aloha_episodes, tmp_path):
    cfg = SFTConfig(data=str(aloha_episodes), out=str(tmp_path), steps=1, model=EFMConfig(embodiment="aloha"))
    with pytest.raises(ValueError, match="instruction prediction"):
        train_sft(cfg)


def test_stage2_practises_insertion_with_a_success_bonus(stage1, tmp_path):
    cfg = Stage2Config(policy=str(stage1 / "best_bc"), reward_model=str(stage1 / "best_steps"), out=str(tmp_path),
                       loops=1, updates=2, minibatch=4, envs=2, max_steps=3, task_family="insertion",
                       success_bonus=1.0)  # fmt: skip
    result = self_improve(cfg)
    (loop,) = result["history"]
    assert loop["episodes"] >= 3 and loop["mean_length"] <= 3
    policy = load_checkpoint(stage1 / "best_bc")
    report = evaluate(policy, StepsToGoDetector(load_checkpoint(stage1 / "best_steps"), 0.0), 2, "insertion",
                      max_steps=2, envs=2)  # fmt: skip
    assert report["episodes"] == 2


def test_stage2_config_names_an_unknown_task_family():
    with pytest.raises((ConfigError, ValueError), match="task_family"):
        Stage2Config(policy="p", reward_model="r", out="o", task_family="peg_in_hole")
