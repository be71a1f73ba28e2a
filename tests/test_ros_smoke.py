"""The ROS 2 wheels work on this machine: two nodes exchange sensor_msgs/Image over DDS (loopback only)."""

import os
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = pytest.mark.ros


def test_discovery_is_confined_to_loopback():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


@pytest.mark.parametrize("height,width", [(64, 64), (480, 640)])
def test_image_travels_between_two_nodes(height, width):
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        camera = rclpy.create_node("fake_camera", namespace="robot_0", context=ctx)
        policy = rclpy.create_node("listener", namespace="robot_0", context=ctx)
        received = []
        policy.create_subscription(Image, "camera/top/image_raw", received.append, 10)
        pub = camera.create_publisher(Image, "camera/top/image_raw", 10)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(camera)
        executor.add_node(policy)

        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        msg = Image(height=height, width=width, encoding="rgb8", step=3 * width, data=pixels.tobytes())
        msg.header.frame_id = "camera_top"
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            pub.publish(msg)
            executor.spin_once(timeout_sec=0.05)
        assert received, "no image arrived within 20 s"
        got = received[0]
        assert (got.height, got.width, got.encoding, got.header.frame_id) == (height, width, "rgb8", "camera_top")
        assert np.array_equal(np.frombuffer(bytes(got.data), np.uint8).reshape(height, width, 3), pixels)
        executor.shutdown()
        camera.destroy_node()
        policy.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
