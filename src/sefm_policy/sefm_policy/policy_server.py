"""Policy server: one process acting for every robot of a host, their frames answered in batches.

    python -m sefm_policy.policy_server --namespaces /robot_0 /robot_1 --ros-args --params-file F

Each robot gets the same ``policy`` node, topics and safety layer as with one process per robot
(``sefm bringup`` starts this instead when the graph says ``fleet.batch_policy``); the parameters
(``/**`` in the file) are shared. One loop spins every node and answers the pending frames in one
forward pass once each robot running an episode has sent its frame, or the oldest frame has
waited ``--batch-window-s``.
"""

from __future__ import annotations

import argparse
import os
import sys

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

from sefm_interfaces.ros_common import declare_params, serve, server_args, server_parser

from .node_params import PolicyParams
from .policy_node import PolicyNode, host_for

IDLE_SPIN_S = 0.1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = server_parser("policy_server", __doc__.splitlines()[0])
    parser.add_argument(
        "--batch-window-s", type=float, default=0.05, help="longest a frame waits for the other robots' frames"
    )
    args = server_args(parser, argv)
    if args.batch_window_s < 0:
        parser.error(f"--batch-window-s must be >= 0, got {args.batch_window_s}")
    return args


def main(args=None) -> None:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    cli = parse_args(remove_ros_args(args if args is not None else sys.argv)[1:])
    rclpy.init(args=args)
    server = Node("policy_server")
    host = host_for(server, declare_params(server, PolicyParams), window_s=cli.batch_window_s)
    robots = [PolicyNode(namespace, host) for namespace in cli.namespaces]
    for node in robots:
        node.peers = robots

    def step(executor: SingleThreadedExecutor) -> None:
        executor.spin_once(timeout_sec=host.wait_s() if host.pending else IDLE_SPIN_S)
        if host.ready(sum(node.expects_frame() for node in robots)):
            host.flush()

    serve(server, robots, (host.batch_sizes, "answered"), step)


if __name__ == "__main__":
    main()
