import json

import pytest
import yaml

from sefm.demo import DemoConfig, run_demo, stage1
from sefm.harness import fresh_domain
from sefm_interfaces.typed_config import ConfigError, load_config
from sefm_policy.checkpoint import load_checkpoint

pytestmark = pytest.mark.ros


def test_demo_runs_the_whole_story_and_writes_the_report(repo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(fresh_domain()))
    graph = yaml.safe_load((repo_root / "config" / "sim_language_table.yaml").read_text())
    graph["nodes"]["recorder"]["out_dir"] = str(tmp_path / "unused")
    (tmp_path / "graph.yaml").write_text(yaml.safe_dump(graph))
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({"steps": 3, "batch_size": 6, "val_every": 3, "val_samples": 8}))
    config = {
        "graph": "graph.yaml",
        "stage1": {"demonstrations": 4, "sft_config": "sft.yaml"},
        "stage2": {"loops": 2, "updates": 2, "minibatch": 8, "max_steps": 6, "success_threshold": 0.0},
        "evaluation_episodes": 3,
        "curve_every": 1,
        "curve_episodes": 2,
        "workers": 1,
        "calibration": {"episodes": 3},
    }
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    report = run_demo(tmp_path / "demo.yaml", tmp_path / "runs", from_scratch=True)

    run = report.parent
    summary = json.loads((run / "summary.json").read_text())
    assert summary["demonstrations"] == 4 and summary["stage1"]["episodes"] == 3
    assert [c["loop"] for c in summary["curve"]] == [0, 1, 2]
    assert [h["loop"] for h in summary["history"]] == [1, 2]
    assert (run / "success_vs_extra_episodes.png").read_bytes()[:4] == b"\x89PNG"
    calibration = summary["calibration"]
    assert calibration["episodes"] == 3 and (run / calibration["figure"]).read_bytes()[:4] == b"\x89PNG"
    s = summary["config"]["stage2"]["success_threshold"]
    assert s == (calibration["recommended_threshold"] or 0.0)  # measured s, else the configured one
    text = report.read_text()
    assert "| Stage 1 (BC) |" in text and "extra episodes" in text.lower()
    assert "calibration/calibration.png" in text
    paired = summary["paired"]
    assert paired["seeds"] == 3 and paired["gained"] + paired["lost"] <= 3 and "McNemar" in text
    bags = [p for p in (run / "practice").iterdir() if not p.name.startswith(".")]
    assert len(bags) >= summary["history"][-1]["extra_episodes"]


def test_demo_names_a_wrong_stage2_key_before_any_work(tmp_path):
    (tmp_path / "demo.yaml").write_text(
        yaml.safe_dump({"graph": "g.yaml", "stage1": {"sft_config": "s.yaml"}, "stage2": {"lr": -1}})
    )
    with pytest.raises(ConfigError, match="lr"):
        run_demo(tmp_path / "demo.yaml", tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_demo_refuses_a_shipped_stage1_of_another_task(repo_root, tmp_path):
    shipped = repo_root / "checkpoints" / "stage1_block2block"  # recorded as block2block
    cfg = DemoConfig(task_family="block2block4", graph="g.yaml",
                     stage1={"checkpoint": str(shipped), "sft_config": "s.yaml"})  # fmt: skip
    with pytest.raises(ValueError, match="trained on block2block, the demo runs block2block4"):
        stage1(cfg, tmp_path, tmp_path, from_scratch=False)


def test_the_shipped_demo_starts_from_a_loadable_stage1_pair_of_its_own_task(repo_root, tmp_path):
    config = repo_root / "config" / "demo.yaml"
    cfg = load_config(config, DemoConfig)
    folder, record = stage1(cfg, config.parent, tmp_path, from_scratch=False)
    assert record["task_family"] == cfg.task_family
    policy, reward = load_checkpoint(folder / "best_bc"), load_checkpoint(folder / "best_steps")
    assert policy.embodiment.reasoning_slots > 0  # the chain of places the 4-block rung acts through
    assert reward.config.embodiment == policy.config.embodiment


def test_the_shipped_8_block_pair_is_a_policy_and_a_reward_model_that_read_places_from_the_base(repo_root, tmp_path):
    pair = repo_root / "checkpoints" / "stage1_block2block"
    cfg = DemoConfig(
        task_family="block2block", graph="g.yaml", stage1={"checkpoint": str(pair), "sft_config": "s.yaml"}
    )
    folder, record = stage1(cfg, tmp_path, tmp_path, from_scratch=False)
    assert record["demonstrations"] == 2000  # the 10% fraction of the 20,000-episode full set
    policy, reward = load_checkpoint(folder / "best_bc"), load_checkpoint(folder / "best_steps")
    assert policy.config.action_from == "places" and policy.config.place_reads == "half_patch"
    assert reward.config.steps_from == "places" and reward.config.place_frames > 1
    assert policy.config.snap_places and reward.config.snap_places  # both read places moved onto seen centres
    assert reward.config.vision == policy.config.vision  # one architecture: the reward model is a Stage 1 copy
