"""Camera messages as drivers send them: converted where cv_bridge would, refused by name otherwise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import Image

from sefm_interfaces.ros_common import ImageError, array_to_image, image_to_array, stamp_ns, stamped_verdict
from sefm_interfaces.topics import VERDICTS

RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 7


def message(encoding: str, pixels: np.ndarray, pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], 1)
    return Image(height=h, width=w, encoding=encoding, step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("rgb8", RGB),
        ("bgr8", RGB[:, :, ::-1]),
        ("rgba8", np.concatenate([RGB, np.full((2, 3, 1), 255, np.uint8)], 2)),
        ("bgra8", np.concatenate([RGB[:, :, ::-1], np.full((2, 3, 1), 9, np.uint8)], 2)),
    ],
)
def test_colour_encodings_become_the_same_rgb_frame(encoding, pixels):
    assert np.array_equal(image_to_array(message(encoding, pixels, pad=4)), RGB)


def test_mono8_is_spread_over_three_channels():
    grey = np.array([[0, 100, 255]], np.uint8)
    assert np.array_equal(image_to_array(message("mono8", grey[..., None])), np.repeat(grey[..., None], 3, 2))


def test_round_trip_through_a_message_keeps_the_frame():
    assert np.array_equal(image_to_array(array_to_image(RGB, 5, "camera")), RGB)


@pytest.mark.parametrize(
    ("change", "fault"),
    [
        ({"encoding": "16UC1"}, "unsupported encoding"),
        ({"height": 0}, "empty image"),
        ({"width": 0}, "empty image"),
        ({"step": 5}, "step 5 is less than"),
        ({"height": 9}, "bytes of data, expected"),
    ],
)
def test_malformed_images_are_refused_naming_the_fault(change, fault):
    msg = message("rgb8", RGB)
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError, match=fault):
        image_to_array(msg)


@settings(max_examples=150, deadline=None)
@given(
    encoding=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422", "", "32FC1"]),
    height=st.integers(0, 12),
    width=st.integers(0, 12),
    step=st.integers(0, 60),
    size=st.integers(0, 800),
)
def test_any_image_message_is_either_a_frame_of_its_size_or_an_image_error(encoding, height, width, step, size):
    msg = Image(height=height, width=width, encoding=encoding, step=step, data=bytes(size))
    try:
        frame = image_to_array(msg)
    except ImageError:
        return
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8


@pytest.mark.parametrize("success", [True, False])
def test_a_verdict_carries_the_stamp_of_the_frame_it_judges(success):
    msg = stamped_verdict(success, 1_700_000_000_123_456_789)
    assert stamp_ns(msg) == 1_700_000_000_123_456_789 and VERDICTS[msg.frame_id] is success
