"""Parameters of the node (ROS-free: the graph config and launch file validate them too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sefm_interfaces.typed_config import StrictModel


class RecorderParams(StrictModel):
    out_dir: str = Field("episodes", description="folder the episode bags go into")
    cameras: list[str] = Field(default_factory=lambda: ["front"])
    command_type: Literal["twist", "joint_trajectory"] = Field("twist", description="the policy's command type")
    end_grace_s: float = Field(0.5, ge=0, description="keep recording this long after an episode's end")
    state_joints: list[str] = Field(
        default_factory=list,
        description="the joints the policy reads from a rig's merged joint states; episodes name them so "
        "the reader picks them (empty: every joint, as sent)",
    )
    sync_slop_s: float = Field(
        0.0,
        ge=0,
        description="a rig's cameras and joint states may be this far from the first camera's frame "
        "and still be one moment (the policy's sync_slop_s); episodes record it for the reader",
    )
    end_wait_s: float = Field(
        5.0, ge=0, description="wait up to this much longer for a bag to be whole (the frame after the last action)"
    )


class TrainerParams(StrictModel):
    stage: Literal["sft", "stage2"] = Field("stage2", description="sft: Stage 1 on bags; stage2: practise on the fleet")
    config: str = Field(..., description="YAML with SFTConfig or Stage2Config keys")
    robots: list[str] = Field(default_factory=lambda: ["/robot_0"], description="stage2: namespaces that practise")
    episodes_dir: str = Field("episodes", description="stage2: the recorders' out_dir")
    timeout_s: float = Field(600.0, gt=0, description="stage2: longest wait for the fleet")
