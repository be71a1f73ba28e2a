"""Parameters of the node (ROS-free: the graph config and launch file validate them too)."""

from __future__ import annotations

from pydantic import Field

from sefm_policy.config import StrictModel


class RecorderParams(StrictModel):
    out_dir: str = Field("episodes", description="folder the episode bags go into")
    cameras: list[str] = Field(default_factory=lambda: ["front"])
    end_grace_s: float = Field(0.5, ge=0, description="keep recording this long after an episode's end")
