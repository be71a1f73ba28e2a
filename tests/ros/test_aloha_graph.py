"""ALOHA through the ROS graph: the sim robot, policy, reward, recorder and episode manager of
config/sim_aloha.yaml, then Stage 1 on scripted demonstrations and Stage 2 on the fleet."""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from sefm.fleet_practice import practise_on_fleet
from sefm.graph import load_graph
from sefm.harness import fresh_domain, running, spin_until
from sefm_interfaces.ros_common import SIM_CAMERA_QOS, stamp_ns
from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.bag_reader import load_episodes, peek_episode
from sefm_trainer.datagen import DatagenConfig, generate
from sefm_trainer.sft import SFTConfig, train_sft
from sefm_trainer.stage2 import Stage2Config

pytestmark = pytest.mark.ros
CAMERAS = ["top", "angle", "left_wrist", "right_wrist"]
CHUNK_RUN = 6  # consecutive chunk executions the realtime test waits for


def one_robot(graph, **updates):
    """The config's graph on one robot, with ``updates`` merged into the named nodes' settings."""
    nodes = graph.nodes.model_copy(
        update={name: getattr(graph.nodes, name).model_copy(update=u) for name, u in updates.items()}
    )
    return graph.model_copy(update={"fleet": graph.fleet.model_copy(update={"robots": 1}), "nodes": nodes})


def test_stage1_then_stage2_on_an_aloha_fleet(repo_root, tmp_path):
    demos, stage1 = tmp_path / "demos", tmp_path / "stage1"
    generate(4, demos, DatagenConfig(task_family="insertion", max_steps=25), seed=0, workers=1)
    sft = SFTConfig(data=str(demos), out=str(stage1), steps=2, batch_size=4, objectives=["bc", "steps"],
                    val_every=1, val_samples=4, val_fraction=0.25, model=EFMConfig(embodiment="aloha"))  # fmt: skip
    train_sft(sft)

    episodes = tmp_path / "episodes"
    graph = one_robot(load_graph(repo_root / "config" / "sim_aloha.yaml"), recorder={"out_dir": str(episodes)})
    cfg = Stage2Config(policy=str(stage1 / "best_bc"), reward_model=str(stage1 / "best_steps"),
                       out=str(tmp_path / "s2"), loops=1, updates=2, minibatch=4, max_steps=3,
                       success_threshold=0.0, task_family="insertion", success_bonus=1.0)  # fmt: skip
    result = practise_on_fleet(cfg, graph, log_dir=tmp_path / "logs", domain_id=fresh_domain(), timeout_s=180)

    (loop,) = result["history"]
    assert loop["episodes"] >= 3
    metas = [peek_episode(p) for p in episodes.iterdir() if not p.name.startswith(".")]
    assert metas and all(m.embodiment == "aloha" and m.cameras == CAMERAS for m in metas)
    assert {m.policy_version for m in metas} <= {1}
    loaded = load_episodes(episodes, progress=False)
    full = [e for e in loaded.episodes if e.meta.termination != "abort"]
    assert full, f"no complete practice episode among {loaded.skipped}"
    for ep in full:
        assert ep.length == 3 and ep.actions.shape == (3, 5, 14)
        assert ep.joint_states.shape == (4, 14) and set(ep.frames) == set(CAMERAS)
        assert ep.action_tokens.shape == (3, 70)


def test_realtime_aloha_executes_each_chunk_over_its_five_control_periods(repo_root, tmp_path):
    ckpt = str(save_checkpoint(EFM.build(EFMConfig(embodiment="aloha")), tmp_path / "tiny", {"version": 0}))
    graph = one_robot(
        load_graph(repo_root / "config" / "sim_aloha.yaml"),
        sim_bridge={"mode": "realtime"},
        policy={"checkpoint": ckpt},
        reward={"checkpoint": ckpt},
        recorder={"out_dir": str(tmp_path / "episodes")},
        episode_manager={"max_steps": 10_000},
    )
    with running(graph, tmp_path / "logs") as (bringup, probe, executor):
        frames = []
        probe.create_subscription(Image, "/robot_0/camera/top/image_raw", lambda m: frames.append(stamp_ns(m)),
                                  SIM_CAMERA_QOS)  # fmt: skip
        # Until the first chunks arrive (the policy warms up: 0.25-1.3 s) the joints hold, one
        # 0.1 s period at a time; once the policy keeps up, every chunk runs 5 x 0.1 s.
        steady = lambda: len(frames) > CHUNK_RUN and np.all(np.diff(frames[-CHUNK_RUN - 1 :]) > 0.4e9)  # noqa: E731
        spin_until(executor, bringup, steady, 120, f"{CHUNK_RUN} chunks in a row")
    gaps = np.diff(frames) / 1e9
    # The old bug (a whole chunk per 0.1 s tick) never gives gaps over 0.4 s, so `steady` is the test;
    # here: no chunk overruns its five periods, and the start-up holds are counted, not forbidden.
    assert np.all(gaps[-CHUNK_RUN:] < 0.7), gaps
    holds = int((gaps < 0.4).sum())
    print(f"{holds} holds before the policy kept up, then {CHUNK_RUN} chunks of {gaps[-CHUNK_RUN:]} s")
