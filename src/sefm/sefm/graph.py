"""The node graph from one YAML file: which nodes, how many robots, their parameters.

``launch/bringup.launch.py`` (ROS install) and ``sefm bringup`` (pip install) both build
their nodes from :func:`node_specs`, so the two ways to run start the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from sefm_interfaces.typed_config import StrictModel, load_config
from sefm_policy.node_params import PolicyParams
from sefm_reward.node_params import RewardParams
from sefm_sim_bridge.node_params import SimBridgeParams
from sefm_trainer.node_params import RecorderParams

from .node_params import EpisodeManagerParams

# name -> (package, executable, python module, parameter model); start order follows this table.
NODE_TYPES: dict[str, tuple[str, str, str, type[BaseModel]]] = {
    "sim_bridge": ("sefm_sim_bridge", "sim_node", "sefm_sim_bridge.sim_node", SimBridgeParams),
    "recorder": ("sefm_trainer", "recorder_node", "sefm_trainer.recorder_node", RecorderParams),
    "reward": ("sefm_reward", "reward_node", "sefm_reward.reward_node", RewardParams),
    "policy": ("sefm_policy", "policy_node", "sefm_policy.policy_node", PolicyParams),
    "episode_manager": ("sefm", "episode_manager_node", "sefm.episode_manager_node", EpisodeManagerParams),
}


class FleetConfig(StrictModel):
    robots: int = Field(1, ge=1, description="namespaces <prefix>0 .. <prefix>{robots-1}")
    namespace_prefix: str = Field("robot_", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    multi_host: bool = Field(False, description="let DDS discover beyond localhost (real fleets on many hosts)")
    seed_stride: int = Field(100_000, ge=1, description="robot i's sim seeds start at seed + i * seed_stride")
    respawn: bool = Field(
        False, description="restart a node that dies while the others keep running (launch's respawn)"
    )
    respawn_delay_s: float = Field(1.0, ge=0, description="wait this long before restarting a dead node")
    batch_policy: bool = Field(
        False,
        description="one policy_server process acts for every robot, answering frames that arrive together in "
        "one batched forward pass (one model in memory, not one per robot)",
    )
    batch_window_s: float = Field(0.05, ge=0, description="batch_policy: longest a frame waits for the others'")
    batch_reward: bool = Field(
        False,
        description="one reward_server process reads d for every robot, scoring their newest frames in one pass "
        "(one reward model in memory, not one per robot)",
    )

    def batched(self, name: str) -> bool:
        """Does one server process run every robot's ``name`` node?"""
        return (name == "policy" and self.batch_policy) or (name == "reward" and self.batch_reward)


class NodesConfig(StrictModel):
    sim_bridge: SimBridgeParams | None = None
    recorder: RecorderParams | None = None
    reward: RewardParams | None = None
    policy: PolicyParams | None = None
    episode_manager: EpisodeManagerParams | None = None


class GraphConfig(StrictModel):
    fleet: FleetConfig = FleetConfig()
    nodes: NodesConfig = NodesConfig()
    remap: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per node: its topic name -> the rig's (ROS remapping; e.g. policy/command -> a controller's)",
    )

    @field_validator("remap")
    @classmethod
    def _known_nodes(cls, remap: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(remap) - set(NODE_TYPES))
        if unknown:
            raise ValueError(f"unknown nodes {unknown}; expected some of {list(NODE_TYPES)}")
        return remap


@dataclass(frozen=True)
class NodeSpec:
    package: str
    executable: str
    module: str
    name: str
    namespace: str
    parameters: dict
    remaps: tuple[tuple[str, str], ...] = ()
    serves: tuple[str, ...] = ()  # a server's robot namespaces: its nodes live there, it in /
    arguments: tuple[str, ...] = ()  # command-line arguments before --ros-args

    @property
    def fqn(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"


def load_graph(path: str | Path) -> GraphConfig:
    return load_config(path, GraphConfig)


def resolve(path: str, base: Path) -> str:
    """Paths in a graph file are relative to the file, so a config works from any directory."""
    return str((base / path).resolve()) if path and not Path(path).is_absolute() else path


def node_specs(config: GraphConfig, base_dir: str | Path = ".") -> list[NodeSpec]:
    base = Path(base_dir)
    fleet = config.fleet
    namespaces = [f"/{fleet.namespace_prefix}{robot}" for robot in range(fleet.robots)]
    specs = []
    for robot, namespace in enumerate(namespaces):
        for name, (package, executable, module, _) in NODE_TYPES.items():
            params = getattr(config.nodes, name)
            if params is None or fleet.batched(name):
                continue
            values = params.model_dump()
            if name == "sim_bridge":
                values["seed"] = params.seed + robot * fleet.seed_stride
            specs.append(
                NodeSpec(package, executable, module, name, namespace, _resolved(values, base), _remaps(config, name))
            )
    for name in SERVERS:
        if fleet.batched(name) and getattr(config.nodes, name) is not None:
            specs.append(server_spec(config, name, namespaces, base))
    return specs


# node -> (package, executable, python module) of the process that runs it for every robot of a host
SERVERS = {
    "policy": ("sefm_policy", "policy_server", "sefm_policy.policy_server"),
    "reward": ("sefm_reward", "reward_server", "sefm_reward.reward_server"),
}


def server_spec(config: GraphConfig, name: str, namespaces: list[str], base: Path) -> NodeSpec:
    """One process for every robot's ``name`` node (``sefm_policy.policy_server``, ``sefm_reward.reward_server``)."""
    package, executable, module = SERVERS[name]
    arguments = ("--namespaces", *namespaces)
    if name == "policy":
        arguments += ("--batch-window-s", str(config.fleet.batch_window_s))
    values = _resolved(getattr(config.nodes, name).model_dump(), base)
    return NodeSpec(
        package, executable, module, executable, "/", values, _remaps(config, name), tuple(namespaces), arguments
    )


def _resolved(values: dict, base: Path) -> dict:
    return {key: resolve(value, base) if key in ("checkpoint", "out_dir") else value for key, value in values.items()}


def _remaps(config: GraphConfig, name: str) -> tuple[tuple[str, str], ...]:
    return tuple(config.remap.get(name, {}).items())
