import json

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
