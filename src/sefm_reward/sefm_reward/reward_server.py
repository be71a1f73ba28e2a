"""Reward server: one process reading d for every robot of a host, their frames scored in batches.

    python -m sefm_reward.reward_server --namespaces /robot_0 /robot_1 --ros-args --params-file F

Each robot gets the same ``reward`` node and topics as with one process per robot (``sefm
bringup`` starts this instead when the graph says ``fleet.batch_reward``); the parameters (``/**``
in the file) are shared. One frozen model scores the newest frame of every robot waiting in one
pass (``reward_host``).
"""

from __future__ import annotations

import os
import sys

import rclpy
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from sefm_interfaces.ros_common import declare_params, serve, server_args, server_parser

from .node_params import RewardParams
from .reward_node import RewardNode, host_for


def main(args=None) -> None:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    parser = server_parser("reward_server", __doc__.splitlines()[0])
    cli = server_args(parser, remove_ros_args(args if args is not None else sys.argv)[1:])
    rclpy.init(args=args)
    server = Node("reward_server")
    host = host_for(server, declare_params(server, RewardParams))
    robots = [RewardNode(namespace, host) for namespace in cli.namespaces]
    serve(server, robots, (host.batch_sizes, "scored"), close=host.close)


if __name__ == "__main__":
    main()
