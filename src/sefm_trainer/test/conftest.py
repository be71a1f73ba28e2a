import shutil
from pathlib import Path

import pytest

from sefm_trainer.datagen import DatagenConfig, generate

FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "rosbag2"


@pytest.fixture(scope="session")
def demo_episodes(tmp_path_factory) -> Path:
    """Three scripted demonstrations, written once per test session."""
    out = tmp_path_factory.mktemp("episodes")
    generate(3, out, DatagenConfig(), seed=0, workers=1)
    return out


@pytest.fixture
def episode_folder(tmp_path, demo_episodes) -> Path:
    """A private copy of the demonstrations that a test may damage."""
    shutil.copytree(demo_episodes, tmp_path / "eps")
    return tmp_path / "eps"


@pytest.fixture
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"rosbag2 fixtures not found at {FIXTURES}")
    return FIXTURES
