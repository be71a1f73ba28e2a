import json

import pytest

from sefm.cli import main
from sefm_policy.checkpoint import load_checkpoint


def test_model_init_then_info_round_trips(tmp_path, capsys, repo_root):
    out = tmp_path / "ckpt"
    config = repo_root / "config" / "efm_tiny.yaml"
    assert main(["model", "init", "--config", str(config), "--section", "model", "--out", str(out), "--seed", "5"]) == 0
    assert load_checkpoint(out).config.seed == 5
    capsys.readouterr()
    assert main(["model", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["version"] == 0 and info["action_slots"] == 4 and info["parameters"] > 0


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  image_size: -3\n")
    assert main(["model", "init", "--config", str(bad), "--section", "model", "--out", str(tmp_path / "x")]) == 2
    assert "key 'image_size'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_info_on_a_broken_checkpoint_exits_2(tmp_path, capsys):
    assert main(["model", "info", str(tmp_path)]) == 2
    assert "manifest.json: missing" in capsys.readouterr().err


def test_model_reconfigure_keeps_the_weights_and_changes_only_how_they_are_read(tmp_path, capsys):
    chain, out, config = tmp_path / "chain", tmp_path / "pooled", tmp_path / "chain.yaml"
    config.write_text("reason: true\naction_from: places\nplace_radices: [6, 4]\nsteps_from: places\n")
    assert main(["model", "init", "--config", str(config), "--out", str(chain)]) == 0
    assert main(["model", "reconfigure", str(chain), "--out", str(out), "--place-frames", "4"]) == 0
    before, after = load_checkpoint(chain), load_checkpoint(out)
    assert (
        after.config.place_frames == 4 and after.config.model_dump() | {"place_frames": 1} == before.config.model_dump()
    )
    assert all((a == b).all() for a, b in zip(before.state_dict().values(), after.state_dict().values(), strict=True))
    capsys.readouterr()
    assert main(["model", "reconfigure", str(chain), "--out", str(tmp_path / "x")]) == 2
    assert "--place-frames" in capsys.readouterr().err
    assert main(["model", "init", "--out", str(tmp_path / "tiny")]) == 0
    assert (
        main(["model", "reconfigure", str(tmp_path / "tiny"), "--out", str(tmp_path / "y"), "--place-frames", "4"]) == 2
    )
    assert "place_frames > 1 needs steps_from" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_datagen_then_episodes_summarises_the_folder(tmp_path, capsys):
    out = tmp_path / "demos"
    assert main(["datagen", "--episodes", "2", "--out", str(out), "--task", "block2location", "--seed", "3"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["written"] == 2 and sorted(p.name for p in out.iterdir()) == [
        "block2location_000003",
        "block2location_000004",
    ]
    (out / "notes").mkdir()  # not a bag: reported, not fatal
    assert main(["episodes", "summary", str(out), "--verbose"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["task_families"] == ["block2location"]
    assert summary["skipped"][0]["path"].endswith("notes") and len(summary["metadata"]) == 2


def test_episodes_on_a_missing_folder_exits_2(tmp_path, capsys):
    assert main(["episodes", "summary", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_reward_calibrate_writes_the_sweep_and_fails_when_no_threshold_is_precise(tmp_path, capsys):
    demos, ckpt, out = tmp_path / "demos", tmp_path / "ckpt", tmp_path / "cal"
    assert main(["datagen", "--episodes", "3", "--out", str(demos), "--seed", "11"]) == 0
    assert main(["model", "init", "--out", str(ckpt)]) == 0
    capsys.readouterr()
    # an untrained reward model cannot separate success: exit 1 and say so, but keep the figures
    code = main(["reward", "calibrate", "--checkpoint", str(ckpt), "--data", str(demos), "--out", str(out)])
    captured = capsys.readouterr()
    result = json.loads((out / "calibration.json").read_text())
    assert code == 1 and "does not tell success apart" in captured.err
    assert result["episodes"] == 3 and len(result["scores"]) == 40 and (out / "calibration.png").exists()


def test_eval_records_the_failures_it_was_asked_for_and_calibrate_pools_them_with_demonstrations(tmp_path, capsys):
    from sefm_trainer.bag_reader import load_episodes

    demos, ckpt, rec = tmp_path / "demos", tmp_path / "ckpt", tmp_path / "failures"
    assert main(["datagen", "--episodes", "2", "--out", str(demos), "--seed", "11"]) == 0
    assert main(["model", "init", "--out", str(ckpt)]) == 0
    common = ["eval", "--checkpoint", str(ckpt), "--episodes", "2", "--max-steps", "3", "--seed", "40"]
    assert main([*common, "--record", str(tmp_path / "none"), "--record-only", "successes"]) == 0
    assert not any((tmp_path / "none").iterdir())  # an untrained policy succeeds nowhere
    capsys.readouterr()
    assert main([*common, "--record", str(rec), "--record-only", "failures"]) == 0
    assert json.loads(capsys.readouterr().out)["recorded"]["episodes"] == 2
    recorded = load_episodes(rec, progress=False).episodes
    assert [ep.meta.seed for ep in recorded] == [40, 41]
    assert all(ep.meta.success is False and ep.meta.length == 3 and len(ep.action_tokens) == 3 for ep in recorded)
    assert main(
        [
            "reward",
            "calibrate",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(demos),
            str(rec),
            "--out",
            str(tmp_path / "cal"),
        ]
    ) in (0, 1)
    result = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert result["data"] == [str(demos), str(rec)] and result["episodes"] == 4 and result["successful"] == 2


def test_flags_take_their_choices_defaults_and_help_from_the_config(capsys):
    from sefm_sim_bridge.envs import LANGUAGE_TABLE_FAMILIES
    from sefm_trainer.evaluate import EvalConfig

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--task {" + ",".join(LANGUAGE_TABLE_FAMILIES) + "}" in help_text
    assert f"--episodes EPISODES (default: {EvalConfig.model_fields['episodes'].default})" in help_text
    assert EvalConfig.model_fields["reward_model"].description in help_text


def test_a_flag_outside_the_configs_range_exits_2_naming_the_key(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path), "--episodes", "0"]) == 2
    assert "key 'episodes'" in capsys.readouterr().err


def test_a_bug_is_not_turned_into_an_exit_code(monkeypatch, tmp_path):
    import sefm.cli

    def broken(cfg):
        raise ValueError("a bug, not the user's doing")

    monkeypatch.setattr(sefm.cli, "run_evaluation", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["eval", "--checkpoint", str(tmp_path)])
