"""Reward node: d(o, g), reward and success for the newest frame, plus an RViz text overlay.

Inference runs in a worker thread on the newest frame only, so the camera callback never
waits on the model and a slow detector skips frames instead of falling behind (the paper's
asynchronous success detector).
"""

from __future__ import annotations

import threading

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

from .detector import Reading, StepsToGoDetector
from .node_params import RewardParams


class RewardNode(Node):
    def __init__(self) -> None:
        super().__init__("reward")
        self.params = p = declare_params(self, RewardParams)
        if not p.checkpoint:
            raise ValueError(f"{self.get_fully_qualified_name()}: parameter 'checkpoint' is required")
        torch.set_num_threads(p.torch_threads)
        self.detector = StepsToGoDetector(load_checkpoint(p.checkpoint), p.success_threshold)
        needs_state = self.detector.model.embodiment.state is not None
        self.sync = FrameSync(p.cameras, needs_state=needs_state, slop_ns=round(p.sync_slop_s * 1e9))
        self.instruction: str | None = None
        self.prev_frame = None
        self.pending = None  # newest (observation, its stamp, episode)
        self.episode = 0
        self.processed = 0
        self.cond = threading.Condition()
        self.stopping = False
        self.d_pub = self.create_publisher(Float32, ifc.STEPS_TO_GO, RELIABLE_QOS)
        self.r_pub = self.create_publisher(Float32, ifc.REWARD, RELIABLE_QOS)
        self.s_pub = self.create_publisher(Header, ifc.SUCCESS, RELIABLE_QOS)
        self.m_pub = self.create_publisher(MarkerArray, ifc.MARKERS, RELIABLE_QOS)
        subscribe_moments(self, self.sync, self.on_snapshot, p.state_joints)
        self.create_subscription(String, ifc.INSTRUCTION, self.on_instruction, LATCHED_QOS)
        self.create_subscription(String, ifc.EVENTS, self.on_event, RELIABLE_QOS)
        self.worker = threading.Thread(target=self.work, daemon=True)
        self.worker.start()

    def on_instruction(self, msg: String) -> None:
        with self.cond:
            self.instruction = msg.data

    def on_event(self, msg: String) -> None:
        event = read_event(self, msg.data)
        if isinstance(event, EpisodeStart):
            with self.cond:
                self.episode += 1
                self.prev_frame = None
                self.pending = None

    def on_snapshot(self, snapshot: Snapshot) -> None:
        with self.cond:
            if self.sync.needs_state:
                images, state = snapshot.frames, snapshot.state
            else:
                frame = snapshot.frames[0]
                images, state = (frame, frame if self.prev_frame is None else self.prev_frame), None
                self.prev_frame = frame
            if self.instruction is not None:
                observation = Observation(images=images, instruction=self.instruction, state=state)
                self.pending = (observation, snapshot.stamp_ns, self.episode)
                self.cond.notify()

    def work(self) -> None:
        """The worker never dies silently: a frame that fails is logged and the next one is read."""
        last_episode = None
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.pending is not None or self.stopping)
                if self.stopping:
                    return
                observation, stamp, episode = self.pending
                self.pending = None
            try:
                if episode != last_episode:
                    self.detector.reset()
                    last_episode = episode
                reading = self.detector.update(observation)
            except Exception as err:
                self.get_logger().error(f"steps-to-go failed on a frame, skipped: {err!r}", throttle_duration_sec=5.0)
                continue
            with self.cond:
                if episode != self.episode:
                    continue  # the episode ended while we computed; its verdict is moot
            self.publish(reading, stamp)
            self.processed += 1

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
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.worker.join(timeout=2.0)


def main(args=None) -> None:
    run(RewardNode, args)


if __name__ == "__main__":
    main()
