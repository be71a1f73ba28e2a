import json
import time

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from sefm.harness import fresh_domain
from sefm_interfaces import topics as ifc
from sefm_interfaces.ros_common import LATCHED_QOS
from sefm_policy.checkpoint import load_checkpoint
from sefm_trainer.datagen import DatagenConfig, generate
from sefm_trainer.node_params import TrainerParams
from sefm_trainer.trainer_node import TrainerNode

pytestmark = pytest.mark.ros


def test_trainer_node_runs_stage1_and_announces_the_policy_checkpoint(tmp_path):
    generate(4, tmp_path / "demos", DatagenConfig(), seed=0, workers=1)
    config = tmp_path / "sft.yaml"
    out = tmp_path / "stage1"
    config.write_text(yaml.safe_dump({"data": str(tmp_path / "demos"), "out": str(out), "steps": 2, "batch_size": 6,
                                      "val_every": 2, "val_samples": 8}))  # fmt: skip
    context = Context()
    rclpy.init(context=context, domain_id=fresh_domain())
    try:
        node = TrainerNode(TrainerParams(stage="sft", config=str(config)), context=context)
        heard = []
        node.create_subscription(String, ifc.CHECKPOINT, lambda m: heard.append(json.loads(m.data)), LATCHED_QOS)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        node.start()
        deadline = time.monotonic() + 120
        while (node.worker.is_alive() or not heard) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert node.error is None
        assert heard == [{"path": str(out / "best_bc"), "version": "stage1"}]
        assert load_checkpoint(heard[0]["path"]) is not None
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
