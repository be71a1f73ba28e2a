import sys
import types

import pytest
import yaml

from sefm.bringup import command, ros_environment, write_params
from sefm.graph import GraphConfig, load_graph, node_specs
from sefm_interfaces.typed_config import ConfigError, parse_config
from sefm_policy.policy_server import parse_args


def test_specs_put_every_node_in_every_robot_namespace(repo_root):
    config = load_graph(repo_root / "config" / "sim_language_table.yaml")
    specs = node_specs(config, repo_root / "config")
    assert len(specs) == 10 and {s.namespace for s in specs} == {"/robot_0", "/robot_1"}
    policy = next(s for s in specs if s.fqn == "/robot_1/policy")
    assert policy.parameters["checkpoint"] == str((repo_root / "runs" / "tiny_init").resolve())
    sims = [s for s in specs if s.name == "sim_bridge"]
    assert [s.parameters["seed"] for s in sims] == [0, 100_000]


def test_a_wrong_node_parameter_is_named():
    with pytest.raises(ConfigError, match=r"key 'nodes\.policy\.temperature'"):
        parse_config({"nodes": {"policy": {"temperature": -1}}}, GraphConfig)
    with pytest.raises(ConfigError, match=r"key 'nodes\.reward\.treshold'"):
        parse_config({"nodes": {"reward": {"treshold": 1}}}, GraphConfig)
    with pytest.raises(ConfigError, match=r"key 'fleet\.robots'"):
        parse_config({"fleet": {"robots": 0}}, GraphConfig)


def test_bringup_runs_nodes_with_their_namespace_name_and_parameters(tmp_path):
    spec = node_specs(parse_config({"nodes": {"recorder": {"out_dir": "/data"}}}, GraphConfig))[0]
    path = write_params(spec, tmp_path)
    assert yaml.safe_load(path.read_text()) == {"/robot_0/recorder": {"ros__parameters": spec.parameters}}
    cmd = command(spec, path)
    assert cmd[1:3] == ["-m", "sefm_trainer.recorder_node"] and "__ns:=/robot_0" in cmd and "__node:=recorder" in cmd


def test_a_batched_fleet_runs_one_policy_server_for_every_robot(tmp_path):
    fleet = {"robots": 3, "batch_policy": True, "batch_window_s": 0.02}
    config = parse_config({"fleet": fleet, "nodes": {"sim_bridge": {}, "policy": {"checkpoint": "/ckpt"}}}, GraphConfig)
    specs = node_specs(config)
    assert [s.name for s in specs] == ["sim_bridge"] * 3 + ["policy_server"]
    server = specs[-1]
    assert server.serves == ("/robot_0", "/robot_1", "/robot_2") and server.fqn == "/policy_server"
    path = write_params(server, tmp_path)
    assert yaml.safe_load(path.read_text()) == {"/**": {"ros__parameters": server.parameters}}
    cmd = command(server, path)
    assert cmd[1:3] == ["-m", "sefm_policy.policy_server"]
    assert cmd[3 : cmd.index("--ros-args")] == [
        "--namespaces", "/robot_0", "/robot_1", "/robot_2", "--batch-window-s", "0.02",
    ]  # fmt: skip
    assert not any(arg.startswith(("__ns:=", "__node:=")) for arg in cmd)  # its nodes name themselves
    with pytest.raises(ConfigError, match=r"key 'fleet\.batch_window_s'"):
        parse_config({"fleet": {"batch_window_s": -1}}, GraphConfig)


def test_a_fleet_batching_rewards_runs_one_reward_server_beside_each_robots_policy(tmp_path):
    nodes = {"reward": {"checkpoint": "/rm", "success_threshold": 2.5}, "policy": {"checkpoint": "/ckpt"}}
    config = parse_config({"fleet": {"robots": 2, "batch_reward": True}, "nodes": nodes}, GraphConfig)
    specs = node_specs(config)
    assert [s.fqn for s in specs] == ["/robot_0/policy", "/robot_1/policy", "/reward_server"]
    server = specs[-1]
    assert server.parameters["success_threshold"] == 2.5 and server.serves == ("/robot_0", "/robot_1")
    cmd = command(server, write_params(server, tmp_path))
    assert cmd[1 : cmd.index("--ros-args")] == [
        "-m",
        "sefm_reward.reward_server",
        "--namespaces",
        "/robot_0",
        "/robot_1",
    ]
    both = parse_config(
        {"fleet": {"robots": 2, "batch_reward": True, "batch_policy": True}, "nodes": nodes}, GraphConfig
    )
    assert [s.fqn for s in node_specs(both)] == ["/policy_server", "/reward_server"]


def test_policy_server_refuses_a_robot_named_twice():
    assert parse_args(["--namespaces", "/robot_0", "/robot_1"]).batch_window_s == 0.05
    with pytest.raises(SystemExit):
        parse_args(["--namespaces", "/robot_0", "/robot_0"])


def test_bringup_keeps_dds_on_loopback_unless_multi_host(monkeypatch):
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    assert ros_environment(GraphConfig(), domain_id=7)["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert ros_environment(GraphConfig(), domain_id=7)["ROS_DOMAIN_ID"] == "7"
    multi = parse_config({"fleet": {"multi_host": True}}, GraphConfig)
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in ros_environment(multi)


@pytest.mark.parametrize("batched", [False, True])
def test_launch_file_starts_the_same_nodes_as_bringup(repo_root, tmp_path, monkeypatch, batched):
    """launch/launch_ros are not in the pip install: stand-ins record what the launch file builds."""
    made = []

    class Node:
        def __init__(self, **kwargs):
            made.append(kwargs)

    class Action:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    fakes = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda actions: actions),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=Action, OpaqueFunction=Action, SetEnvironmentVariable=Action
        ),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros.actions": types.SimpleNamespace(Node=Node),
        "ament_index_python.packages": types.SimpleNamespace(get_package_share_directory=lambda p: "/opt/share"),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace: dict = {}
    launch_file = repo_root / "launch" / "bringup.launch.py"
    exec(compile(launch_file.read_text(), str(launch_file), "exec"), namespace)
    description = namespace["generate_launch_description"]()
    opaque = next(a for a in description if "function" in a.kwargs)
    config_path = repo_root / "config" / "sim_language_table.yaml"
    if batched:
        graph = yaml.safe_load(config_path.read_text())
        graph["fleet"] |= {"batch_policy": True, "batch_reward": True}
        config_path = tmp_path / "batched.yaml"
        config_path.write_text(yaml.safe_dump(graph))
    actions = opaque.kwargs["function"]({"config": str(config_path)})
    specs = node_specs(load_graph(config_path), config_path.parent)
    env = [a.args for a in actions if isinstance(a, Action)]
    assert ("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST") in env
    assert [s.name for s in specs if s.serves] == (["policy_server", "reward_server"] if batched else [])
    assert [
        (m["package"], m["executable"], m.get("namespace"), m.get("name"), m["arguments"], m["parameters"])
        for m in made
    ] == [
        (
            s.package,
            s.executable,
            *((None, None) if s.serves else (s.namespace, s.name)),
            list(s.arguments),
            [s.parameters],
        )
        for s in specs
    ]
