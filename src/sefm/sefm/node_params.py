"""Parameters of the node (ROS-free: the graph config and launch file validate them too)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sefm_interfaces.typed_config import StrictModel


class EpisodeManagerParams(StrictModel):
    max_steps: int = Field(100, gt=0)
    stall_timeout_s: float = Field(
        10.0, ge=0, description="end an episode as an error after this long without a step (0: never)"
    )
    source: Literal["sim", "list"] = Field("sim", description="sim: ask the sim bridge for seeded tasks")
    instructions: list[str] = Field(default_factory=lambda: ["push the red moon to the blue cube"])
    autostart: bool = True
    start_paused: bool = Field(False, description="wait for episode/pause(false), e.g. from a Stage 2 learner")
    episodes: int = Field(0, ge=0, description="stop after this many episodes (0: no limit)")
    cameras: list[str] = Field(default_factory=lambda: ["front"], description="the cameras episodes record")
    embodiment: str = "language_table"
    start_delay_s: float = Field(0.2, ge=0)
    wait_for_topics: list[str] = Field(
        default_factory=lambda: ["policy/command", "reward/success"],
        description="the first episode starts once each of these has a publisher (models loaded)",
    )
    heartbeat_hz: float = Field(
        20.0, gt=0, description="rate of episode/heartbeat: the policy moves only while it hears it"
    )
    wait_for_policy_version: bool = Field(
        True, description="start no episode before the policy node has said which checkpoint it acts with"
    )
