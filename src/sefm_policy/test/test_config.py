import pytest

from sefm_interfaces.typed_config import ConfigError, load_config, parse_config
from sefm_policy.config import EFMConfig


def test_wrong_value_names_its_key():
    with pytest.raises(ConfigError, match=r"key 'vision\.hidden_size': .*greater than 0.*got -4"):
        parse_config({"vision": {"hidden_size": -4}}, EFMConfig)


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"key 'text\.hiden_size': Extra inputs are not permitted"):
        parse_config({"text": {"hiden_size": 64}}, EFMConfig)


def test_cross_field_rule_is_explained():
    with pytest.raises(ConfigError, match=r"image_size \(60\) must be a multiple of vision.patch_size \(16\)"):
        parse_config({"image_size": 60}, EFMConfig)
    with pytest.raises(ConfigError, match="joint_low must list 14 values"):
        parse_config({"embodiment": "aloha", "joint_low": [0.0] * 3}, EFMConfig)


def test_yaml_section_loads_and_errors_name_the_file(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text("model:\n  embodiment: aloha\n  image_size: 32\n")
    assert load_config(path, EFMConfig, section="model").embodiment == "aloha"
    path.write_text("model:\n  embodiment: quadruped\n")
    with pytest.raises(ConfigError, match=r"(?s)graph\.yaml \[model\].*key 'embodiment'"):
        load_config(path, EFMConfig, section="model")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", EFMConfig)
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(path, EFMConfig)
    assert "\n" not in str(err.value) and "line 2" in str(err.value)  # one line, saying where


def test_conv_stem_needs_a_power_of_two_patch():
    with pytest.raises(ConfigError, match="power-of-two patch_size"):
        parse_config({"image_size": 96, "vision": {"patch_size": 12, "stem": "conv"}}, EFMConfig)
    assert parse_config({"image_size": 96, "vision": {"patch_size": 12, "stem": "patch"}}, EFMConfig)


def test_image_size_defaults_to_the_embodiments_view():
    assert EFMConfig().model_image_size == 96 and EFMConfig(embodiment="aloha").model_image_size == 64
    assert EFMConfig(image_size=128).model_image_size == 128


def test_pixel_normalisation_defaults_to_background_when_tiny_and_siglip_when_pretrained():
    assert EFMConfig().pixel_normalization == "background"
    assert EFMConfig(pretrained_path="/models/paligemma").pixel_normalization == "siglip"
    assert EFMConfig(pretrained_path="/models/paligemma", pixel_norm="background").pixel_normalization == "background"
    with pytest.raises(ConfigError, match="pixel_norm"):
        parse_config({"pixel_norm": "imagenet"}, EFMConfig)
