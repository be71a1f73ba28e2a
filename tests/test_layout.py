"""The workspace layout (README, "Layout"): ament_python packages that are also pip-installable."""

import xml.etree.ElementTree as ET

import pytest

from sefm_interfaces.typed_config import load_config
from sefm_policy.config import EFMConfig

PACKAGES = ["sefm", "sefm_interfaces", "sefm_policy", "sefm_reward", "sefm_trainer", "sefm_sim_bridge"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_ament_python_format_3(repo_root, name):
    pkg = repo_root / "src" / name
    root = ET.parse(pkg / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == name
    assert root.find("export").findtext("build_type") == "ament_python"
    assert (pkg / "resource" / name).is_file()
    assert (pkg / "setup.cfg").read_text().count(f"$base/lib/{name}") == 2
    setup = (pkg / "setup.py").read_text()
    assert f'package_name = "{name}"' in setup and '"resource/" + package_name' in setup
    assert (pkg / name / "__init__.py").is_file()


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_importable_from_the_pip_install(name):
    __import__(name)


def test_shipped_tiny_config_is_the_default(repo_root):
    assert load_config(repo_root / "config" / "efm_tiny.yaml", EFMConfig, section="model") == EFMConfig()


def test_rviz_config_shows_the_camera_and_reward_markers(repo_root):
    import yaml

    rviz = yaml.safe_load((repo_root / "config" / "sefm.rviz").read_text())
    displays = {d["Class"]: d for d in rviz["Visualization Manager"]["Displays"]}
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "/robot_0/camera/front/image_raw"
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/robot_0/reward/markers"
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "board"


TRAINING_CONFIGS = {  # file prefix -> the config it holds, with the keys a command line gives
    "pretrain": ("sefm_trainer.pretrain", "PretrainConfig", {"out": "runs/x"}),
    "stage1": ("sefm_trainer.sft", "SFTConfig", {"data": "runs/d", "out": "runs/x"}),
    "objects": ("sefm_trainer.sft", "SFTConfig", {"data": "runs/d", "out": "runs/x"}),
    "stage2": ("sefm_trainer.stage2", "Stage2Config", {"out": "runs/x", "policy": "p", "reward_model": "r"}),
}


def test_every_shipped_training_config_is_valid_for_its_command(repo_root):
    """A config a README or results page tells people to run must not go stale as fields change."""
    import importlib

    import yaml

    from sefm_interfaces.typed_config import parse_config

    checked = 0
    for path in sorted((repo_root / "config").glob("*.yaml")):
        prefix = path.stem.split("_")[0]
        if prefix not in TRAINING_CONFIGS:
            continue
        module, name, given = TRAINING_CONFIGS[prefix]
        parse_config({**given, **yaml.safe_load(path.read_text())}, getattr(importlib.import_module(module), name))
        checked += 1
    assert checked >= 40


def test_the_block2block_reproduction_runs_only_commands_sefm_accepts(repo_root, tmp_path, monkeypatch):
    """benchmarks/reproduce_block2block.py takes hours; a flag renamed under it must fail here."""
    import importlib

    from sefm.cli import parser

    monkeypatch.syspath_prepend(str(repo_root / "benchmarks"))
    reproduce = importlib.import_module("reproduce_block2block")
    for name, argv in reproduce.phases(tmp_path / "a b"):
        args = parser().parse_args(argv)
        assert callable(args.run), name
        if getattr(args, "config", None):
            assert (repo_root / args.config).is_file(), name
    assert [n for n, _ in reproduce.phases(tmp_path)][-1] == "policy_centres"
