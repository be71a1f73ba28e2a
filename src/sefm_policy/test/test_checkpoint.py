import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sefm_policy.checkpoint import CheckpointError, load_checkpoint, load_vision_tower, read_manifest, save_checkpoint
from sefm_policy.config import EFMConfig, TextConfig, VisionConfig
from sefm_policy.model import EFM
from sefm_policy.testing import aloha_observations, table_observations


def outputs(model, obs):
    with torch.no_grad():
        return (
            model.sample_actions(obs, greedy=True).tokens,
            model.expected_steps_to_go(obs),
            model.action_log_prob(obs, np.array([[1, 4, 0, 9]] * len(obs))),
        )


def test_round_trip_gives_identical_outputs(tiny, tmp_path):
    obs = table_observations(4)
    save_checkpoint(tiny, tmp_path / "ckpt", metadata={"version": 3})
    loaded = load_checkpoint(tmp_path / "ckpt")
    a, b = outputs(tiny, obs), outputs(loaded, obs)
    assert np.array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert loaded.config == tiny.config
    assert read_manifest(tmp_path / "ckpt")["metadata"] == {"version": 3}


def test_aloha_round_trip_keeps_joint_normalisation(tmp_path):
    config = EFMConfig(embodiment="aloha", joint_low=[-1.0] * 14, joint_high=[2.0] * 14)
    model = EFM.build(config).eval()
    save_checkpoint(model, tmp_path / "aloha")
    loaded = load_checkpoint(tmp_path / "aloha")
    obs = aloha_observations(2)
    assert np.array_equal(
        model.sample_actions(obs, greedy=True).actions, loaded.sample_actions(obs, greedy=True).actions
    )
    assert loaded.embodiment.action.low == [-1.0] * 14


def test_an_untied_output_head_keeps_its_own_weights_through_a_round_trip(tmp_path):
    model = EFM.build(EFMConfig(text=TextConfig(tie_embeddings=False))).eval()
    head, embed = model.backbone.lm_head.weight, model.backbone.get_input_embeddings().weight
    assert head.data_ptr() != embed.data_ptr() and not torch.equal(head, embed)
    save_checkpoint(model, tmp_path / "untied")
    loaded = load_checkpoint(tmp_path / "untied").eval()
    assert torch.equal(loaded.backbone.lm_head.weight, head)
    assert loaded.backbone.lm_head.weight.data_ptr() != loaded.backbone.get_input_embeddings().weight.data_ptr()
    obs = table_observations(2)
    assert torch.equal(model.expected_steps_to_go(obs), loaded.expected_steps_to_go(obs))


def test_a_wider_decoder_starts_on_a_checkpoints_vision_tower_and_background(tiny, tmp_path):
    tiny.fit_background(table_observations(4))
    save_checkpoint(tiny, tmp_path / "seeing")
    torch.manual_seed(1)
    wide = EFM.build(EFMConfig(text=TextConfig(hidden_size=96, num_layers=3)))
    decoder = {k: v.clone() for k, v in wide.backbone.model.language_model.state_dict().items()}
    load_vision_tower(wide, tmp_path / "seeing")
    for name, value in tiny.backbone.model.vision_tower.state_dict().items():
        assert torch.equal(wide.backbone.model.vision_tower.state_dict()[name], value), name
    assert all(torch.equal(v, decoder[k]) for k, v in wide.backbone.model.language_model.state_dict().items())
    assert torch.equal(wide.background, tiny.background)


def test_a_vision_tower_of_another_shape_is_refused_naming_both(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "seeing")
    other = EFM.build(EFMConfig(vision=VisionConfig(hidden_size=32)))
    with pytest.raises(CheckpointError, match=r"vision tower.*hidden_size.*differs"):
        load_vision_tower(other, tmp_path / "seeing")


def test_round_trip_keeps_the_fitted_background(tiny, tmp_path):
    tiny.fit_background(table_observations(4))
    save_checkpoint(tiny, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert torch.equal(loaded.background, tiny.background) and not loaded.background.eq(127.5).all()


def test_checkpoint_from_before_background_normalisation_is_refused_with_the_fix(tiny, tmp_path):
    path = save_checkpoint(tiny, tmp_path / "old")
    (path / "background.safetensors").unlink()
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["files"]["background.safetensors"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"background\.safetensors.*pixel_norm: siglip"):
        load_checkpoint(path)


def test_checkpoint_holds_no_pickle(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    names = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert "model.safetensors" in names and "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]


def test_source_tree_never_unpickles():
    root = Path(__file__).resolve().parents[3]
    offenders = [
        str(p)
        for p in root.glob("src/*/sefm*/**/*.py")
        if any(s in p.read_text() for s in ("import pickle", "torch.load(", "import dill", "joblib.load"))
    ]
    assert offenders == []


def test_crash_mid_save_leaves_the_previous_checkpoint_untouched(tiny, tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    save_checkpoint(tiny, target, metadata={"version": 1})
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(tiny.tokenizer, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny, target, metadata={"version": 2})
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind
    assert read_manifest(target)["metadata"] == {"version": 1}


def test_crash_on_first_save_leaves_nothing_that_looks_like_a_checkpoint(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny.tokenizer, "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_checkpoint(tiny, tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []


def test_saving_over_a_checkpoint_replaces_it(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt", metadata={"version": 1})
    save_checkpoint(tiny, tmp_path / "ckpt", metadata={"version": 2})
    assert read_manifest(tmp_path / "ckpt")["metadata"] == {"version": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")


def test_missing_manifest_names_the_file(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"manifest\.json: missing"):
        load_checkpoint(tmp_path / "ckpt")


def test_truncated_weights_name_the_file(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated"):
        load_checkpoint(tmp_path / "ckpt")


def test_tampered_file_of_the_same_size_names_the_file(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: contents do not match"):
        load_checkpoint(tmp_path / "ckpt")


def test_deleted_file_names_the_file(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: missing"):
        load_checkpoint(tmp_path / "ckpt")


def test_garbled_manifest_is_reported(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"manifest\.json: not valid JSON"):
        load_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "manifest.json").write_text(json.dumps({"format": "other/9", "files": {}}))
    with pytest.raises(CheckpointError, match="unknown format"):
        load_checkpoint(tmp_path / "ckpt")


def test_tokenizer_missing_from_files_and_manifest_names_the_file(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path / "ckpt")
    manifest = json.loads((tmp_path / "ckpt" / "manifest.json").read_text())
    del manifest["files"]["tokenizer.json"]
    (tmp_path / "ckpt" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "ckpt" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: missing"):
        load_checkpoint(tmp_path / "ckpt")
