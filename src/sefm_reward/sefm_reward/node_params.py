"""Parameters of the node (ROS-free: the graph config and launch file validate them too)."""

from __future__ import annotations

from pydantic import Field

from sefm_interfaces.typed_config import StrictModel


class RewardParams(StrictModel):
    checkpoint: str = Field("", description="frozen EFM checkpoint (the best steps-to-go one of Stage 1)")
    cameras: list[str] = Field(
        default_factory=lambda: ["front"], description="LanguageTable: one camera; ALOHA: top, angle, left, right wrist"
    )
    success_threshold: float = Field(3.0, ge=0, description="success when d <= this many steps")
    torch_threads: int = Field(1, ge=1, description="CPU threads for inference; several nodes share the cores")
    state_joints: list[str] = Field(
        default_factory=list, description="ALOHA: the joints to read from joint_states, by name (empty: all, as sent)"
    )
    sync_slop_s: float = Field(
        0.0, ge=0, description="0: a moment's images and state share a stamp (sim); a rig: how far apart they may be"
    )
