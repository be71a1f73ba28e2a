"""Parameters of the node (ROS-free: the graph config and launch file validate them too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sefm_interfaces.typed_config import StrictModel


class PolicyParams(StrictModel):
    checkpoint: str = Field("", description="EFM checkpoint directory to act with")
    cameras: list[str] = Field(
        default_factory=lambda: ["front"], description="LanguageTable: one camera; ALOHA: top, angle, left, right wrist"
    )
    temperature: float = Field(1.0, ge=0.0, description="sampling temperature; 0 = greedy")
    chain_temperature: float = Field(
        0.0, ge=0.0, description="a reasoning chain's places: 0 said greedily, > 0 coarse digits sampled (practice)"
    )
    greedy: bool = False
    command_type: Literal["twist", "joint_trajectory", "float64_array"] = "twist"
    control_hz: float = Field(10.0, gt=0)
    stale_after_s: float = Field(0.5, gt=0, description="a command answering a frame older than this is a stop")
    require_episode: bool = Field(
        True, description="command only while the episode manager's heartbeat says an episode is running"
    )
    supervisor_timeout_s: float = Field(0.5, gt=0, description="heartbeat silence after which the policy holds")
    max_command: float = Field(0.1, gt=0, description="planar: per-axis limit of a delta (m per step)")
    max_change: float = Field(
        0.2, gt=0, description="per-value bound on the change between consecutive commands (m or rad)"
    )
    actuation_enabled: bool = Field(False, description="real rigs start disarmed; sims enable it in config")
    joint_names: list[str] = Field(default_factory=lambda: [f"joint_{i}" for i in range(14)])
    seed: int = 0
    torch_threads: int = Field(1, ge=1, description="CPU threads for inference; several nodes share the cores")
    state_joints: list[str] = Field(
        default_factory=list, description="ALOHA: the joints to read from joint_states, by name (empty: all, as sent)"
    )
    sync_slop_s: float = Field(
        0.0, ge=0, description="0: a moment's images and state share a stamp (sim); a rig: how far apart they may be"
    )
