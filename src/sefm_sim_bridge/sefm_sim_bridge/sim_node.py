"""Sim bridge node: a simulated robot that looks, to the graph, like a real one.

``lockstep`` steps as soon as the command answering the newest frame arrives (or holds
after ``step_timeout_s``), for fast practice; ``realtime`` steps at a fixed rate with the
latest command, as a real rig does: a velocity command (LanguageTable) is repeated while fresh;
each newly arrived ALOHA chunk of k joint targets takes k periods to execute, and the joints
then hold their last target until the next chunk arrives. Episodes are driven by the episode
manager: ``sim/reset`` lays out the next seeded task, the ``start`` event makes the first frame,
``end`` stops stepping.
"""

from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeStart, SimTask, encode
from sefm_interfaces.ros_common import (
    RELIABLE_QOS,
    SIM_CAMERA_QOS,
    array_to_image,
    declare_params,
    read_event,
    run,
    set_stamp,
    stamp_ns,
    stamped_verdict,
)

from .envs import embodiment_of, make_env
from .node_params import SimBridgeParams


class SimBridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_bridge")
        self.params = p = declare_params(self, SimBridgeParams)
        self.env = make_env(p.task_family, image_size=(p.image_size, p.image_size), max_steps=10**9)
        self.aloha = embodiment_of(p.task_family) == "aloha"
        self.obs: dict | None = None  # the env's newest observation
        self.period = 1.0 / p.control_hz
        self.episode = 0
        self.running = False
        self.actions = 0  # commands executed this episode
        self.stop_after: int | None = None  # lockstep: the episode's length, once it has ended
        self.frame_stamp = 0
        self.frame_time = 0.0
        self.resent = False  # lockstep: the newest frame was published a second time
        self.busy_until = 0.0  # realtime: when the executing action (an ALOHA chunk) is done
        self.executed: int | None = None  # realtime ALOHA: the frame stamp the last executed chunk answered
        self.last_observation: list = []  # (publisher, message) of the newest frame, to resend
        self.latest: tuple[int, float, np.ndarray] | None = None  # (answers stamp, received at, action)
        # ALOHA: its four cameras by name and the joints; LanguageTable: one camera and the effector pose.
        cameras = self.env.observation_space["images"].keys() if self.aloha else [p.camera]
        self.image_pubs = {c: self.create_publisher(Image, ifc.camera_topic(c), SIM_CAMERA_QOS) for c in cameras}
        if self.aloha:
            self.state_pub = self.create_publisher(JointState, ifc.JOINT_STATES, RELIABLE_QOS)
        else:
            self.state_pub = self.create_publisher(PoseStamped, ifc.EFFECTOR_POSE, RELIABLE_QOS)
        self.success_pub = self.create_publisher(Header, ifc.SIM_SUCCESS, RELIABLE_QOS)
        command_type = JointTrajectory if self.aloha else TwistStamped
        self.create_subscription(command_type, ifc.COMMAND, self.on_command, RELIABLE_QOS)
        self.create_subscription(String, ifc.EVENTS, self.on_event, RELIABLE_QOS)
        self.create_service(Trigger, ifc.SIM_RESET, self.on_reset)
        rate = self.period if p.mode == "realtime" else min(self.period, 0.02)
        self.create_timer(rate, self.tick)
        self.get_logger().info(f"{p.task_family} sim, {p.mode} at {p.control_hz} Hz, {p.image_size}px")

    def on_reset(self, request, response):
        seed = self.params.seed + self.episode
        obs, _ = self.env.reset(seed=seed)
        self.obs = obs
        self.episode += 1
        self.running = False
        response.success = True
        response.message = encode(
            SimTask(instruction=obs["instruction"], seed=seed, task_family=self.params.task_family)
        )
        return response

    def on_event(self, msg: String) -> None:
        event = read_event(self, msg.data)
        if isinstance(event, EpisodeStart):
            self.running, self.actions, self.stop_after, self.latest = True, 0, None, None
            self.busy_until, self.executed = 0.0, None
            self.publish_observation()
        elif isinstance(event, EpisodeEnd):
            # Lockstep: the command for the episode's last action may still be on its way; execute
            # it so the episode's final frame exists, then stop.
            length = event.meta.length
            if self.params.mode == "lockstep" and self.actions < length:
                self.stop_after = length
            else:
                self.running = False

    def on_command(self, msg) -> None:
        if self.aloha and not msg.points:
            action = self.hold()  # an empty trajectory: hold where you are (joint_trajectory_controller)
        elif self.aloha:
            action = np.array([p.positions for p in msg.points], dtype=np.float64).reshape(-1, 14)
        else:
            action = np.array([msg.twist.linear.x, msg.twist.linear.y]) * self.period
        self.latest = (stamp_ns(msg), time.monotonic(), action)
        if self.running and self.params.mode == "lockstep" and self.latest[0] == self.frame_stamp:
            self.actions += 1
            self.step(action)
            if self.stop_after is not None and self.actions >= self.stop_after:
                self.running = False

    def tick(self) -> None:
        if not self.running:
            return
        if self.params.mode == "realtime":
            now = time.monotonic()
            if now < self.busy_until:
                return
            if self.aloha:  # a trajectory controller runs each newly arrived chunk once, as a real one does
                action = self.hold()
                if self.latest is not None and self.latest[0] != self.executed:
                    self.executed, action = self.latest[0], self.latest[2]
            else:
                fresh = self.latest is not None and now - self.latest[1] < 2 * self.period
                action = self.latest[2] if fresh else self.hold()
            # Half a period of slack keeps the timer's phase from skipping a whole tick.
            self.busy_until = now + (len(action) if self.aloha else 1) * self.period - self.period / 2
            self.step(action)
        elif time.monotonic() - self.frame_time > self.params.step_timeout_s:
            if self.stop_after is not None:  # the episode is over and its last command is not coming
                self.running = False
                return
            if not self.resent:  # a frame can be lost before DDS has matched a subscriber: send it again
                self.resent = True
                self.frame_time = time.monotonic()
                for publisher, msg in self.last_observation:
                    publisher.publish(msg)
                return
            self.get_logger().warning("no command for the newest frame: holding", throttle_duration_sec=5.0)
            self.step(self.hold())

    def hold(self) -> np.ndarray:
        """Stay put: no planar motion, or the joints' last targets."""
        return self.env.command[None] if self.aloha else np.zeros(2)

    def step(self, action: np.ndarray) -> None:
        self.obs, _, _, _, _ = self.env.step(np.nan_to_num(action))
        self.publish_observation()

    def publish_observation(self) -> None:
        now = self.get_clock().now().nanoseconds
        self.frame_stamp = max(now, self.frame_stamp + 1)
        self.frame_time = time.monotonic()
        self.resent = False
        frames = self.obs["images"] if self.aloha else {self.params.camera: self.obs["rgb"]}
        messages = [(self.image_pubs[c], array_to_image(f, self.frame_stamp, f"camera_{c}")) for c, f in frames.items()]
        if self.aloha:
            state = JointState(name=list(self.env.joint_names), position=[float(v) for v in self.obs["qpos"]])
            state.header.frame_id = "base"
            set_stamp(state, self.frame_stamp)
        else:
            state = PoseStamped()
            state.header.frame_id = "board"
            set_stamp(state, self.frame_stamp)
            state.pose.position.x, state.pose.position.y = (float(v) for v in self.obs["effector"])
            state.pose.orientation.w = 1.0
        # The sim's verdict on this very frame, stamped like it: a recorder matches it to the
        # episode's final frame however late it arrives (ifc.SIM_SUCCESS).
        verdict = stamped_verdict(self.env.success(), self.frame_stamp)
        # The state goes first: a policy acts the moment its last camera frame arrives.
        self.last_observation = [(self.state_pub, state), (self.success_pub, verdict), *messages]
        for publisher, msg in self.last_observation:
            publisher.publish(msg)

    def close(self) -> None:
        self.env.close()


def main(args=None) -> None:
    run(SimBridgeNode, args)


if __name__ == "__main__":
    main()
