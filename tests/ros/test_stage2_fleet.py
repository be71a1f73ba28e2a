import json

import pytest

from sefm.fleet_practice import practise_on_fleet
from sefm.harness import fresh_domain, graph
from sefm_trainer.bag_reader import peek_episode
from sefm_trainer.stage2 import Stage2Config

pytestmark = pytest.mark.ros


def test_stage2_practises_on_the_fleet_with_each_loops_policy(tiny_checkpoints, tmp_path):
    episodes = tmp_path / "episodes"
    nodes = {
        "sim_bridge": {"mode": "lockstep"},
        "recorder": {"out_dir": str(episodes)},
        "reward": {"checkpoint": "set by the learner"},
        "policy": {"checkpoint": "set by the learner", "actuation_enabled": True},
        "episode_manager": {},
    }
    cfg = Stage2Config(
        policy=str(tiny_checkpoints[0]), reward_model=str(tiny_checkpoints[1]), out=str(tmp_path / "stage2"),
        loops=2, updates=2, minibatch=8, max_steps=6, success_threshold=0.0,
    )  # fmt: skip
    result = practise_on_fleet(cfg, graph(nodes, robots=2), log_dir=tmp_path / "logs", domain_id=fresh_domain(),
                               timeout_s=120)  # fmt: skip

    history = result["history"]
    assert [h["loop"] for h in history] == [1, 2]
    # N×B = 16 steps of 6-step episodes: at least 3 episodes a loop, from both robots.
    assert all(h["episodes"] >= 3 for h in history)
    metas = [peek_episode(p) for p in episodes.iterdir() if not p.name.startswith(".")]
    assert {m.policy_version for m in metas} <= {1, 2}, "every practice episode ran a version the learner announced"
    assert {m.namespace for m in metas} == {"/robot_0", "/robot_1"}
    for loop in (1, 2):
        ran = [m for m in metas if m.policy_version == loop]
        assert len(ran) >= history[loop - 1]["episodes"]
        assert all(m.length == 6 for m in ran if m.termination != "abort")
    logs = "\n".join(p.read_text() for p in (tmp_path / "logs").glob("*_policy.log"))
    assert logs.count("hot-reloaded policy version 2") == 2
    lines = (tmp_path / "stage2" / "stage2.jsonl").read_text().splitlines()
    assert [json.loads(line)["loop"] for line in lines] == [1, 2]


def test_the_fleet_refuses_a_greedy_lead_its_policy_nodes_cannot_act(tiny_checkpoints, tmp_path):
    cfg = Stage2Config(policy=str(tiny_checkpoints[0]), reward_model=str(tiny_checkpoints[1]),
                       out=str(tmp_path / "stage2"), greedy_steps=10)  # fmt: skip
    with pytest.raises(ValueError, match="greedy_steps and baseline: greedy are in-process"):
        practise_on_fleet(cfg, graph({"policy": {}, "reward": {}, "recorder": {}, "episode_manager": {}}))
