"""Every test process keeps ROS traffic on loopback, in a domain of its own (DESIGN.md §8)."""

import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent
