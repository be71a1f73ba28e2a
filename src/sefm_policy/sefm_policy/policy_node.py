"""Policy node: on each fresh frame run the EFM and command the robot through the safety layer.

A process runs one node (one robot) or, as ``policy_server``, one node per robot namespace
around a shared :class:`~sefm_policy.policy_host.PolicyHost` that batches their frames.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from std_msgs.msg import Bool, Float64MultiArray, Int32MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import CheckpointInfo, ProtocolError, decode, encode
from sefm_interfaces.frame_sync import FrameSync, Snapshot
from sefm_interfaces.ros_common import LATCHED_QOS, RELIABLE_QOS, declare_params, run, set_stamp, subscribe_moments

from .node_params import PolicyParams
from .policy_host import PolicyHost, Sampling
from .prompts import Observation
from .safety import SafetyLayer, SafetyLimits


def host_for(node: Node, params: PolicyParams, window_s: float = 0.0) -> PolicyHost:
    if not params.checkpoint:
        raise ValueError(f"{node.get_fully_qualified_name()}: parameter 'checkpoint' is required")
    torch.set_num_threads(params.torch_threads)
    sampling = Sampling(params.temperature, params.chain_temperature, params.greedy)
    return PolicyHost(params.checkpoint, sampling, seed=params.seed, window_s=window_s)


class PolicyNode(Node):
    """``host``: shared with the other robots' nodes of a policy server (their frames are answered
    together by its loop); None: this node's own, and each frame is answered as it arrives."""

    def __init__(self, namespace: str | None = None, host: PolicyHost | None = None) -> None:
        super().__init__("policy", **({"namespace": namespace} if namespace else {}))
        self.params = declare_params(self, PolicyParams)
        p = self.params
        self.batched = host is not None
        self.host = host or host_for(self, p)
        self.peers: list[PolicyNode] = [self]  # the nodes sharing the host: a reload is announced on each
        self.period = 1.0 / p.control_hz
        self._check_command_type()
        low, high = self.host.model.embodiment.command_limits(p.max_command)
        self.safety = SafetyLayer(
            SafetyLimits(
                low=low,
                high=high,
                max_change=np.full(low.shape, p.max_change),
                stale_after_s=p.stale_after_s,
                actuation_enabled=p.actuation_enabled,
            )
        )
        needs_state = self.host.model.embodiment.state is not None
        self.sync = FrameSync(p.cameras, needs_state=needs_state, slop_ns=round(p.sync_slop_s * 1e9))
        self.instruction: str | None = None
        self.waiting: Snapshot | None = None
        self.prev_frame: np.ndarray | None = None
        self.last_frame_time = 0.0
        self.heartbeat_time: float | None = None  # when the episode manager was last heard
        self.episode_running = False
        self.holding: str | None = None  # why the policy is not commanding, once it has said so

        self.tokens_pub = self.create_publisher(Int32MultiArray, ifc.ACTION_TOKENS, RELIABLE_QOS)
        msg_type = {"twist": TwistStamped, "joint_trajectory": JointTrajectory, "float64_array": Float64MultiArray}
        self.command_pub = self.create_publisher(msg_type[p.command_type], ifc.COMMAND, RELIABLE_QOS)
        self.version_pub = self.create_publisher(String, ifc.POLICY_VERSION, LATCHED_QOS)
        self.publish_version()
        subscribe_moments(self, self.sync, self.act, p.state_joints)
        self.create_subscription(String, ifc.INSTRUCTION, self.on_instruction, LATCHED_QOS)
        self.create_subscription(Bool, ifc.ESTOP, self.on_estop, RELIABLE_QOS)
        self.create_subscription(Bool, ifc.HEARTBEAT, self.on_heartbeat, RELIABLE_QOS)
        self.create_subscription(String, ifc.CHECKPOINT, self.on_checkpoint, LATCHED_QOS)
        self.create_timer(self.period, self.watchdog)
        self.add_on_set_parameters_callback(self.on_parameters)
        self.get_logger().info(
            f"acting with {p.checkpoint} ({self.host.model.embodiment.name}, {p.command_type}); "
            f"actuation {'enabled' if p.actuation_enabled else 'DISABLED'}"
        )

    def on_parameters(self, params) -> SetParametersResult:
        """``actuation_enabled`` may be set while running, so a rig is armed once someone has checked
        it (``ros2 param set /robot_0/policy actuation_enabled true``); the rest is read at start."""
        for param in params:
            if param.name != "actuation_enabled":
                return SetParametersResult(successful=False, reason=f"{param.name} is read at start; restart the node")
            if not isinstance(param.value, bool):
                return SetParametersResult(successful=False, reason="actuation_enabled takes true or false")
        for param in params:
            self.safety.limits.actuation_enabled = param.value
            self.get_logger().warning(f"actuation {'ENABLED' if param.value else 'disabled'} by a parameter change")
        return SetParametersResult(successful=True)

    def _check_command_type(self) -> None:
        emb = self.host.model.embodiment
        wanted = 1 if emb.state is None else len(emb.cameras)
        if len(self.params.cameras) != wanted:
            raise ValueError(
                f"parameter 'cameras' lists {len(self.params.cameras)} cameras; the {emb.name} embodiment of "
                f"{self.params.checkpoint} sees {wanted} ({', '.join(emb.cameras) if wanted > 1 else 'one'})"
            )
        planar = emb.name == "language_table"
        if planar != (self.params.command_type == "twist"):
            raise ValueError(
                f"parameter 'command_type' is {self.params.command_type!r}, which does not fit the "
                f"{emb.name} embodiment of {self.params.checkpoint}"
            )

    # ----- inputs -----------------------------------------------------------------------

    def on_instruction(self, msg: String) -> None:
        self.instruction = msg.data
        self.prev_frame = None
        if self.waiting is not None:  # an episode's first frame can beat its instruction here
            snapshot, self.waiting = self.waiting, None
            self.act(snapshot)

    def on_heartbeat(self, msg: Bool) -> None:
        self.heartbeat_time, self.episode_running = time.monotonic(), bool(msg.data)
        if not self.episode_running:
            self.waiting = None  # a frame of an episode that has ended is never answered
        elif self.supervised() and self.waiting is not None:  # a first frame can beat the heartbeat here
            snapshot, self.waiting = self.waiting, None
            self.act(snapshot)

    def unsupervised_reason(self) -> str | None:
        """Why the policy must not command now (None: it may)."""
        if not self.params.require_episode:
            return None
        if self.heartbeat_time is None:
            return "no episode manager heard yet"
        silent = time.monotonic() - self.heartbeat_time
        if silent > self.params.supervisor_timeout_s:
            return f"episode manager silent for {silent:.2f} s"
        return None if self.episode_running else "no episode running"

    def supervised(self) -> bool:
        return self.unsupervised_reason() is None

    def expects_frame(self) -> bool:
        """Will this robot's next frame be answered? A policy server waits for those robots only."""
        return self.instruction is not None and self.supervised()

    def on_estop(self, msg: Bool) -> None:
        self.safety.set_estop(msg.data)
        if msg.data:
            self.publish_command(self.safety.stop_command(), self.get_clock().now().nanoseconds, stop=True)
            self.get_logger().warning("e-stop engaged: commands stopped")

    def act(self, snapshot: Snapshot) -> None:
        """One complete moment (every camera, and the joints where the model reads them) -> a command."""
        self.last_frame_time = time.monotonic()
        if self.sync.needs_state:
            obs = Observation(images=snapshot.frames, instruction=self.instruction or "", state=snapshot.state)
        else:
            frame = snapshot.frames[0]
            prev = frame if self.prev_frame is None else self.prev_frame
            self.prev_frame = frame
            obs = Observation(images=(frame, prev), instruction=self.instruction or "")
        if self.instruction is None or not self.supervised():
            self.waiting = snapshot
            return
        self.holding = None
        self.host.submit(obs, lambda action, tokens: self.answer(snapshot.stamp_ns, action, tokens))
        if not self.batched:
            self.host.flush()

    def answer(self, stamp_ns: int, action: np.ndarray, tokens: np.ndarray) -> None:
        # The age of the frame this command answers, on the node's clock: slow inference makes it stale.
        age = (self.get_clock().now().nanoseconds - stamp_ns) / 1e9
        command, why = self.safety.filter(action.reshape(-1), frame_age_s=age)
        if why:
            self.get_logger().warning(f"command replaced by stop: {why}", throttle_duration_sec=2.0)
        self.tokens_pub.publish(Int32MultiArray(data=[int(t) for t in tokens]))
        self.publish_command(command, stamp_ns, stop=why is not None)

    def watchdog(self) -> None:
        if self.last_frame_time and self.safety.is_stale(time.monotonic() - self.last_frame_time):
            self.publish_command(self.safety.stop_command(), self.get_clock().now().nanoseconds, stop=True)
        reason = self.unsupervised_reason()
        if reason is not None and self.holding is None and self.last_frame_time:
            # Once per lapse: stop the robot, then answer no frame until an episode runs again.
            self.holding = reason
            self.publish_command(self.safety.stop_command(), self.get_clock().now().nanoseconds, stop=True)
            if reason.startswith("episode manager silent"):
                self.get_logger().warning(f"holding: {reason}")

    # ----- outputs ----------------------------------------------------------------------

    def publish_command(self, command: np.ndarray, obs_stamp_ns: int, stop: bool = False) -> None:
        """``obs_stamp_ns``: the stamp of the frame the command answers (stop commands: now). A stop
        must never send an arm to zero: planar, it is zero velocity; as a JointTrajectory, an empty
        one, on which joint_trajectory_controller holds where it is; as a Float64MultiArray of
        positions (forward_command_controller), nothing, so the last target stays."""
        kind = self.params.command_type
        if kind == "twist":
            msg = TwistStamped()
            msg.header.frame_id = "board"
            set_stamp(msg, obs_stamp_ns)
            v = command / self.period
            msg.twist.linear.x, msg.twist.linear.y = float(v[0]), float(v[1])
        elif kind == "joint_trajectory":
            msg = JointTrajectory(joint_names=list(self.params.joint_names))
            set_stamp(msg, obs_stamp_ns)
            chunk = np.zeros((0, len(self.params.joint_names))) if stop else command.reshape(-1, len(msg.joint_names))
            for k, q in enumerate(chunk):
                point = JointTrajectoryPoint(positions=[float(x) for x in q])
                point.time_from_start.sec, point.time_from_start.nanosec = divmod(
                    int((k + 1) * self.period * 1e9), 10**9
                )
                msg.points.append(point)
        elif stop:
            return
        else:
            msg = Float64MultiArray(data=[float(x) for x in command])
        self.command_pub.publish(msg)

    # ----- hot reload -------------------------------------------------------------------

    def on_checkpoint(self, msg: String) -> None:
        try:
            info = decode(msg.data, CheckpointInfo)
        except ProtocolError as err:
            self.get_logger().error(f"ignoring a checkpoint announcement: {err}")
            return
        path, version = info.path, info.version
        threading.Thread(target=self._reload, args=(path, version), daemon=True).start()

    def _reload(self, path: str, version) -> None:
        """Load off the camera path; swap only a checkpoint that loads and fits."""
        try:
            swapped = self.host.reload(path, version)
        except Exception as err:
            self.get_logger().error(
                f"rejected checkpoint {path} (version {version}): {err}; keeping version {self.host.version}"
            )
            return
        if swapped:
            for node in self.peers:
                node.publish_version()
            self.get_logger().info(f"hot-reloaded policy version {version} from {path}")

    def publish_version(self) -> None:
        """Latched, so a learner can wait until every robot acts with its newest checkpoint."""
        info = CheckpointInfo(path=self.host.path, version=self.host.version)
        self.version_pub.publish(String(data=encode(info)))


def main(args=None) -> None:
    run(PolicyNode, args)


if __name__ == "__main__":
    main()
