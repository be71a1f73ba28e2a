"""Episode manager node: starts episodes (instruction + start event), ends them on detected
success, max length or an operator's abort, and resets; one human supervises many robots."""

from __future__ import annotations

import contextlib
import time

from rclpy.node import Node
from std_msgs.msg import Bool, Header, Int32MultiArray, String
from std_srvs.srv import SetBool, Trigger

from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import (
    CheckpointInfo,
    EpisodeEnd,
    EpisodeStart,
    Message,
    PauseChange,
    PauseReply,
    ProtocolError,
    SimTask,
    decode,
    encode,
)
from sefm_interfaces.ros_common import LATCHED_QOS, RELIABLE_QOS, declare_params, run, stamp_ns

from .episode_tracker import EpisodeTracker
from .node_params import EpisodeManagerParams

SIM_RESET_TIMEOUT_S = 5.0


class EpisodeManagerNode(Node):
    def __init__(self) -> None:
        super().__init__("episode_manager")
        self.params = p = declare_params(self, EpisodeManagerParams)
        self.tracker = EpisodeTracker(p.max_steps, p.stall_timeout_s)
        self.paused = p.start_paused
        self.detected = False
        self.policy_version = None
        self.heard_policy_version = False
        self.finished = 0
        self.starting: float | None = None  # when the pending sim/reset call was made
        self.namespace = self.get_namespace()
        self.instruction_pub = self.create_publisher(String, ifc.INSTRUCTION, LATCHED_QOS)
        self.events_pub = self.create_publisher(String, ifc.EVENTS, RELIABLE_QOS)
        self.heartbeat_pub = self.create_publisher(Bool, ifc.HEARTBEAT, RELIABLE_QOS)
        self.create_timer(1.0 / p.heartbeat_hz, self.heartbeat)
        self.create_timer(0.5, self.check_stall)
        self.create_subscription(Int32MultiArray, ifc.ACTION_TOKENS, self.on_action, RELIABLE_QOS)
        self.create_subscription(Header, ifc.SUCCESS, self.on_success, RELIABLE_QOS)
        self.create_subscription(String, ifc.POLICY_VERSION, self.on_policy_version, LATCHED_QOS)
        self.create_service(Trigger, ifc.RESET, self.on_reset)
        self.create_service(Trigger, ifc.ABORT, self.on_abort)
        self.create_service(SetBool, ifc.PAUSE, self.on_pause)
        self.sim_reset = self.create_client(Trigger, ifc.SIM_RESET) if p.source == "sim" else None
        self.start_timer = None
        if p.autostart:
            self.schedule_start(0.5)

    # ----- starting -----------------------------------------------------------------------

    def schedule_start(self, delay: float) -> None:
        if self.start_timer is not None:
            self.start_timer.cancel()
            self.destroy_timer(self.start_timer)
        self.start_timer = self.create_timer(max(delay, 0.01), self._start_once)

    def _start_once(self) -> None:
        self.start_timer.cancel()
        self.destroy_timer(self.start_timer)
        self.start_timer = None
        self.start_episode()

    def start_episode(self) -> None:
        if self.tracker.running or self.starting is not None or self.paused or self.limit_reached():
            return
        waiting = [t for t in self.params.wait_for_topics if t and self.count_publishers(t) == 0]
        if waiting:
            self.get_logger().info(f"waiting for publishers on {waiting}", throttle_duration_sec=5.0)
            self.schedule_start(0.5)
            return
        if self.params.wait_for_policy_version and not self.heard_policy_version:
            self.get_logger().info("waiting for the policy version", throttle_duration_sec=5.0)
            self.schedule_start(0.2)
            return
        if self.sim_reset is None:
            k = self.tracker.episode_id % len(self.params.instructions)
            self.begin(SimTask(instruction=self.params.instructions[k]))
            return
        if not self.sim_reset.service_is_ready():
            self.get_logger().info("waiting for the sim bridge", throttle_duration_sec=5.0)
            self.schedule_start(0.5)
            return
        self.starting = called = time.monotonic()
        self.sim_reset.call_async(Trigger.Request()).add_done_callback(lambda f: self.on_sim_reset(f, called))

    def on_sim_reset(self, future, called: float) -> None:
        if self.starting != called:
            return  # an answer to a call already given up on
        self.starting = None
        result = future.result()
        if result is None or not result.success:
            self.get_logger().error("sim reset failed; retrying")
            self.schedule_start(1.0)
            return
        if self.paused:  # paused while the sim was resetting
            return
        try:
            task = decode(result.message, SimTask)
        except ProtocolError as err:
            self.get_logger().error(f"sim reset: {err}; retrying")
            self.schedule_start(1.0)
            return
        self.begin(task)

    def begin(self, task: SimTask) -> None:
        info = {
            "instruction": task.instruction,
            "seed": task.seed,
            "task_family": task.task_family,
            "embodiment": self.params.embodiment,
            "namespace": self.namespace,
            "cameras": list(self.params.cameras),
            "policy_version": self.policy_version,
        }
        self.detected = False
        episode_id = self.tracker.start(info, time.monotonic(), self.get_clock().now().nanoseconds)
        self.heartbeat()  # before the start event: the policy may move from the first frame on
        self.instruction_pub.publish(String(data=task.instruction))
        self.publish_event(EpisodeStart(episode_id=episode_id, **info))
        self.get_logger().info(f"episode {episode_id}: {task.instruction!r}")

    def limit_reached(self) -> bool:
        return self.params.episodes > 0 and self.finished >= self.params.episodes

    # ----- ending -------------------------------------------------------------------------

    def end_episode(self, termination: str) -> None:
        if not self.tracker.running:
            return
        meta = self.tracker.finish(termination, self.detected)
        self.heartbeat()
        self.finished += 1
        self.publish_event(EpisodeEnd(episode_id=self.tracker.episode_id, metadata=meta))
        self.get_logger().info(
            f"episode {self.tracker.episode_id} ended: {termination} after {meta['length']} steps"
            f" (detected success {meta['extra']['detected_success']})"
        )
        if self.params.autostart:
            self.schedule_start(self.params.start_delay_s)

    def on_action(self, _msg: Int32MultiArray) -> None:
        reason = self.tracker.on_action(time.monotonic())
        if reason:
            self.end_episode(reason)

    def on_success(self, msg: Header) -> None:
        verdict = ifc.VERDICTS.get(msg.frame_id)
        if verdict is None:
            self.get_logger().error(f"ignoring a verdict named {msg.frame_id!r}", throttle_duration_sec=5.0)
            return
        if self.tracker.on_detected_success(verdict, stamp_ns(msg)):
            self.detected = True
            self.end_episode("success")

    def on_policy_version(self, msg: String) -> None:
        """Episodes carry the version the policy node acts with, which a learner filters on."""
        with contextlib.suppress(ProtocolError):
            self.policy_version = decode(msg.data, CheckpointInfo).version
            self.heard_policy_version = True

    # ----- operator services --------------------------------------------------------------

    def on_reset(self, _request, response):
        self.end_episode("abort")
        self.paused = False
        self.schedule_start(self.params.start_delay_s)
        response.success, response.message = True, "episode reset"
        return response

    def on_abort(self, _request, response):
        running = self.tracker.running
        self.end_episode("abort")
        response.success = running
        response.message = "episode aborted" if running else "no episode running"
        return response

    def on_pause(self, request, response):
        """The reply (JSON) says whether pausing cut an episode short, so a learner can wait for its bag
        (none for an episode without a step: there is nothing to record)."""
        self.paused = bool(request.data)
        cut = self.paused and self.tracker.running and self.tracker.steps > 0
        aborted = self.tracker.episode_id if cut else None
        if self.paused:
            self.end_episode("abort")
        else:
            self.schedule_start(self.params.start_delay_s)
        self.publish_event(PauseChange(event="pause" if self.paused else "resume"))
        response.success = True
        response.message = encode(PauseReply(paused=self.paused, aborted_episode=aborted))
        return response

    def check_stall(self) -> None:
        if self.starting is not None and time.monotonic() - self.starting > SIM_RESET_TIMEOUT_S:
            # A sim that died while resetting never answers: ask again (a respawned one will).
            self.get_logger().warning(f"sim/reset unanswered for {SIM_RESET_TIMEOUT_S} s; asking again")
            self.starting = None
            self.schedule_start(0.5)
        if self.tracker.stalled(time.monotonic()):
            self.get_logger().error(
                f"episode {self.tracker.episode_id}: no step for {self.params.stall_timeout_s} s; ending it"
            )
            self.end_episode("error")  # and, with autostart, the next one begins once the robot is back

    def heartbeat(self) -> None:
        """The policy commands only while it hears this say an episode runs (no motion unsupervised)."""
        self.heartbeat_pub.publish(Bool(data=self.tracker.running))

    def publish_event(self, event: Message) -> None:
        self.events_pub.publish(String(data=encode(event)))


def main(args=None) -> None:
    run(EpisodeManagerNode, args)


if __name__ == "__main__":
    main()
