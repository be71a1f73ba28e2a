import json

import pytest
import rclpy
from rclpy.serialization import serialize_message
from std_msgs.msg import String

from sefm.harness import fresh_domain
from sefm_trainer.recorder_node import RecorderNode

pytestmark = pytest.mark.ros


def _event(kind: str, **fields) -> bytes:
    return serialize_message(String(data=json.dumps({"event": kind, **fields})))


def test_an_episode_ended_before_its_first_step_is_not_saved(tmp_path):
    rclpy.init(args=["--ros-args", "-p", f"out_dir:={tmp_path}"], domain_id=fresh_domain())
    try:
        node = RecorderNode()
        meta = {"instruction": "push the red moon to the blue cube", "embodiment": "language_table", "length": 0,
                "success": False, "termination": "abort"}  # fmt: skip
        node.on_event(_event("start", episode_id=1))
        node.on_event(_event("end", metadata=meta))
        node.flush()
        assert node.committed == 0 and not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
        node.destroy_node()
    finally:
        rclpy.shutdown()
