"""ros2 launch sefm bringup.launch.py config:=<graph.yaml>

Starts the same nodes, with the same parameters, as ``sefm bringup <graph.yaml>``: both
build them from sefm.graph.node_specs.
"""

import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from sefm.graph import load_graph, node_specs


def nodes_from_config(context):
    path = Path(LaunchConfiguration("config").perform(context)).resolve()
    config = load_graph(path)
    actions = []
    if not config.fleet.multi_host:
        actions.append(SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"))
    for spec in node_specs(config, path.parent):
        # A policy server names its nodes in its robots' namespaces itself: no name or namespace here.
        naming = {} if spec.serves else {"name": spec.name, "namespace": spec.namespace}
        actions.append(
            Node(
                package=spec.package,
                executable=spec.executable,
                **naming,
                arguments=list(spec.arguments),
                parameters=[spec.parameters],
                remappings=list(spec.remaps),
                output="screen",
                respawn=config.fleet.respawn,
                respawn_delay=config.fleet.respawn_delay_s,
            )
        )
    return actions


def generate_launch_description():
    default = os.path.join(get_package_share_directory("sefm"), "config", "sim_language_table.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=default, description="graph YAML"),
            OpaqueFunction(function=nodes_from_config),
        ]
    )
