from dataclasses import asdict

import pytest
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import String

from sefm.harness import fresh_domain
from sefm_interfaces import topics as ifc
from sefm_interfaces.episode_protocol import EpisodeEnd, EpisodeMeta, EpisodeStart, Message, encode
from sefm_interfaces.ros_common import set_stamp
from sefm_trainer.bag_reader import read_episode
from sefm_trainer.recorder_node import RecorderNode

pytestmark = pytest.mark.ros


@pytest.fixture
def recorder(tmp_path):
    rclpy.init(args=["--ros-args", "-p", f"out_dir:={tmp_path}"], domain_id=fresh_domain())
    node = RecorderNode()
    yield node
    node.destroy_node()
    rclpy.shutdown()


INSTRUCTION = "push the red moon to the blue cube"


def _event(event: Message) -> bytes:
    return serialize_message(String(data=encode(event)))


def _start() -> bytes:
    return _event(EpisodeStart(instruction=INSTRUCTION, episode_id=1, embodiment="language_table"))


def _end(length: int) -> bytes:
    meta = EpisodeMeta(instruction=INSTRUCTION, embodiment="language_table", length=length, success=False,
                       termination="abort")  # fmt: skip
    return _event(EpisodeEnd(episode_id=1, metadata=asdict(meta)))


def _saved(folder) -> list:
    return [p for p in folder.iterdir() if not p.name.startswith(".")]


def test_an_episode_ended_before_its_first_step_is_not_saved(recorder, tmp_path):
    recorder.on_event(_start())
    recorder.on_event(_end(0))
    recorder.flush()
    assert recorder.committed == 0 and not _saved(tmp_path)


def _stamped(msg, ns: int) -> bytes:
    set_stamp(msg, ns)
    return serialize_message(msg)


def _frame(recorder, ns: int) -> None:
    """One camera frame and the effector pose at ``ns``, as the sim publishes them."""
    image = Image(height=1, width=1, encoding="rgb8", step=3, data=bytes(3))
    recorder._recorder(ifc.camera_topic("front"), "sensor_msgs/msg/Image")(_stamped(image, ns))
    recorder._recorder(ifc.EFFECTOR_POSE, "geometry_msgs/msg/PoseStamped")(_stamped(PoseStamped(), ns))


def _act(recorder, ns: int) -> None:
    """The policy's command answering the frame stamped ``ns``."""
    recorder._recorder(ifc.COMMAND, "geometry_msgs/msg/TwistStamped")(_stamped(TwistStamped(), ns))


def test_an_episode_missing_the_frame_after_its_last_action_is_not_saved(recorder, tmp_path):
    recorder.on_event(_start())
    for ns in (1, 2):  # two frames and two actions: the frame after the last action never came
        _frame(recorder, ns)
        _act(recorder, ns)
    recorder.on_event(_end(2))
    recorder.flush()
    assert recorder.committed == 0 and not _saved(tmp_path)


def test_an_episode_waits_past_its_grace_period_for_the_frame_after_its_last_action(recorder, tmp_path):
    recorder.on_event(_start())
    for ns in (1, 2):
        _frame(recorder, ns)
        _act(recorder, ns)
    recorder.on_event(_end(2))
    (timer,) = recorder.pending
    recorder.complete(timer)  # the grace period is over; the sim's last frame is still on its way
    assert recorder.committed == 0 and recorder.pending
    _frame(recorder, 3)
    recorder.complete(timer)
    (saved,) = _saved(tmp_path)
    assert recorder.committed == 1 and not recorder.pending
    assert read_episode(saved).frames["front"].shape[0] == 3
