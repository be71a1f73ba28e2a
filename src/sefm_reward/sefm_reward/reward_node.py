"""Reward node: d(o, g), reward and success for the newest frame, plus an RViz text overlay.

Inference runs in its host's worker thread on the newest frame only, so the camera callback never
waits on the model and a slow detector skips frames instead of falling behind (the paper's
asynchronous success detector). A reward server's nodes share one host (``reward_host``).
"""

from __future__ import annotations

import threading
from functools import partial

import torch
from rclpy.node import Node
from std_msgs.msg import Float32, Header, String
from visualization_msgs.msg import Marker, MarkerArray

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import EpisodeStart
from sefm_interfaces.frame_sync import FrameSync, Snapshot
from sefm_interfaces.ros_common import (
    LATCHED_QOS,
    RELIABLE_QOS,
    declare_params,
    read_event,
    run,
    stamped_verdict,
    subscribe_moments,
)
from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.prompts import Observation

from .detector import Reading, Readings, StepsToGoDetector
from .node_params import RewardParams
from .reward_host import RewardHost


def host_for(node: Node, params: RewardParams) -> RewardHost:
    if not params.checkpoint:
        raise ValueError(f"{node.get_fully_qualified_name()}: parameter 'checkpoint' is required")
    torch.set_num_threads(params.torch_threads)
    detector = StepsToGoDetector(load_checkpoint(params.checkpoint), params.success_threshold)

    def on_error(err: Exception) -> None:
        node.get_logger().error(f"steps-to-go failed on a frame, skipped: {err!r}", throttle_duration_sec=5.0)

    return RewardHost(detector, on_error)


class RewardNode(Node):
    """``host``: shared with the other robots' nodes of a reward server; None: this node's own."""

    def __init__(self, namespace: str | None = None, host: RewardHost | None = None) -> None:
        super().__init__("reward", **({"namespace": namespace} if namespace else {}))
        self.params = p = declare_params(self, RewardParams)
        self.owns_host = host is None
        self.host = host or host_for(self, p)
        self.readings = Readings(p.success_threshold)
        self.window = self.host.detector.window()  # the places read on this episode's frames
        needs_state = self.host.detector.model.embodiment.state is not None
        self.sync = FrameSync(p.cameras, needs_state=needs_state, slop_ns=round(p.sync_slop_s * 1e9))
        self.instruction: str | None = None
        self.prev_frame = None
        self.episode = 0
        self.read_episode = None  # the episode ``readings`` is on
        self.lock = threading.Lock()
        self.d_pub = self.create_publisher(Float32, ifc.STEPS_TO_GO, RELIABLE_QOS)
        self.r_pub = self.create_publisher(Float32, ifc.REWARD, RELIABLE_QOS)
        self.s_pub = self.create_publisher(Header, ifc.SUCCESS, RELIABLE_QOS)
        self.m_pub = self.create_publisher(MarkerArray, ifc.MARKERS, RELIABLE_QOS)
        subscribe_moments(self, self.sync, self.on_snapshot, p.state_joints)
        self.create_subscription(String, ifc.INSTRUCTION, self.on_instruction, LATCHED_QOS)
        self.create_subscription(String, ifc.EVENTS, self.on_event, RELIABLE_QOS)

    def on_instruction(self, msg: String) -> None:
        with self.lock:
            self.instruction = msg.data

    def on_event(self, msg: String) -> None:
        event = read_event(self, msg.data)
        if isinstance(event, EpisodeStart):
            with self.lock:
                self.episode += 1
                self.prev_frame = None
                self.window = self.host.detector.window()
            self.host.drop(self)

    def on_snapshot(self, snapshot: Snapshot) -> None:
        with self.lock:
            if self.sync.needs_state:
                images, state = snapshot.frames, snapshot.state
            else:
                frame = snapshot.frames[0]
                images, state = (frame, frame if self.prev_frame is None else self.prev_frame), None
                self.prev_frame = frame
            if self.instruction is None:
                return
            observation = Observation(images=images, instruction=self.instruction, state=state)
            episode, window = self.episode, self.window
        self.host.submit(self, observation, window, partial(self.deliver, snapshot.stamp_ns, episode))

    def deliver(self, stamp: int, episode: int, d: float) -> None:
        """The host's worker hands back a frame's d."""
        with self.lock:
            if episode != self.episode:
                return  # the episode ended while we computed; its verdict is moot
            if episode != self.read_episode:
                self.readings.reset()
                self.read_episode = episode
            reading = self.readings.read(d)
        self.publish(reading, stamp)

    def publish(self, reading: Reading, stamp: int) -> None:
        """The verdict carries the stamp of the frame it judges (``topics.VERDICTS``): the episode
        manager matches it to its episode by that, not by when it arrives."""
        self.d_pub.publish(Float32(data=reading.steps_to_go))
        if reading.reward is not None:
            self.r_pub.publish(Float32(data=reading.reward))
        self.s_pub.publish(stamped_verdict(reading.success, stamp))
        marker = Marker(ns="sefm_reward", id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        marker.header.frame_id = "board"
        marker.header.stamp = self.get_clock().now().to_msg()
        marker.pose.position.z = 0.3
        marker.pose.orientation.w = 1.0
        marker.scale.z = 0.04
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = (
            (0.1, 0.8, 0.2, 1.0) if reading.success else (1.0, 1.0, 1.0, 1.0)
        )
        reward = "" if reading.reward is None else f"  r {reading.reward:+.2f}"
        marker.text = f"d {reading.steps_to_go:.1f}{reward}{'  SUCCESS' if reading.success else ''}"
        self.m_pub.publish(MarkerArray(markers=[marker]))

    def close(self) -> None:
        if self.owns_host:
            self.host.close()


def main(args=None) -> None:
    run(RewardNode, args)


if __name__ == "__main__":
    main()
