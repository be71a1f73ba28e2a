"""Parameters of the node (ROS-free: the graph config and launch file validate them too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sefm_interfaces.typed_config import StrictModel

from .envs import TASK_FAMILIES


class SimBridgeParams(StrictModel):
    task_family: Literal[TASK_FAMILIES] = Field(
        "block2block", description="insertion: bimanual ALOHA (four cameras, joint_states, JointTrajectory commands)"
    )
    image_size: int = Field(96, gt=0, description="LanguageTable camera side; ALOHA renders its cameras at 32x64")
    mode: Literal["lockstep", "realtime"] = "lockstep"
    control_hz: float = Field(10.0, gt=0)
    step_timeout_s: float = Field(
        2.0, gt=0, description="lockstep: resend the frame if no command by then; hold (zero command) after twice"
    )
    seed: int = Field(0, description="episode k of this robot uses seed + k")
    camera: str = Field("front", description="LanguageTable's camera name")
