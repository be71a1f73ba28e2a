"""Camera messages -> RGB frames, free of ROS so the nodes and the rig importer share it.

Works on any object shaped like ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``: an
rclpy message in a node, a rosbags message when importing a recording.
"""

from __future__ import annotations

import cv2
import numpy as np


class ImageError(ValueError):
    """A camera message that cannot be read as a frame; the node logs it and skips the frame.
    ``kind`` names the fault, so each kind is rate-limited on its own."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# Encodings converted to RGB as cv_bridge users expect: channels, then the source's order.
_ENCODINGS = {"rgb8": (3, [0, 1, 2]), "bgr8": (3, [2, 1, 0]), "rgba8": (4, [0, 1, 2]), "bgra8": (4, [2, 1, 0])}


def image_to_array(msg) -> np.ndarray:
    """An rgb8 (H, W, 3) frame from rgb8, bgr8, rgba8, bgra8 or mono8; anything else, or a message
    whose sizes do not add up, raises ``ImageError`` saying what is wrong."""
    h, w, step, size = int(msg.height), int(msg.width), int(msg.step), len(msg.data)
    if msg.encoding == "mono8":
        channels, order = 1, [0, 0, 0]
    elif msg.encoding in _ENCODINGS:
        channels, order = _ENCODINGS[msg.encoding]
    else:
        raise ImageError("encoding", f"unsupported encoding {msg.encoding!r} (rgb8, bgr8, rgba8, bgra8 or mono8)")
    if h == 0 or w == 0:
        raise ImageError("empty", f"empty image ({w}x{h})")
    if step < channels * w:
        raise ImageError("step", f"step {step} is less than width x {channels} channels ({channels * w})")
    if size < h * step:
        raise ImageError("size", f"{size} bytes of data, expected height x step = {h * step}")
    rows = np.frombuffer(bytes(msg.data), np.uint8)[: h * step].reshape(h, step)
    pixels = rows[:, : channels * w].reshape(h, w, channels)
    return np.ascontiguousarray(pixels[:, :, order])  # writable, owned by the caller


def compressed_to_array(msg) -> np.ndarray:
    """An rgb8 (H, W, 3) frame from a ``CompressedImage`` (jpeg or png, what image_transport's
    compressed plugin publishes); undecodable data raises ``ImageError``."""
    data = np.frombuffer(bytes(msg.data), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageError("decode", f"cannot decode {data.size} bytes of {msg.format!r} compressed image")
    return np.ascontiguousarray(bgr[:, :, ::-1])
