import numpy as np
import pytest

from sefm_interfaces.frame_sync import FrameSync

CAMS = ("top", "angle", "left_wrist", "right_wrist")


def image(v):
    return np.full((2, 2, 3), v, np.uint8)


def test_a_moment_is_complete_once_every_camera_and_the_state_are_in():
    sync = FrameSync(CAMS, needs_state=True)
    for i, cam in enumerate(CAMS):
        assert sync.add_image(cam, 100, image(i)) is None
    snap = sync.add_state(100, np.arange(14))
    assert snap.stamp_ns == 100 and [int(f[0, 0, 0]) for f in snap.frames] == [0, 1, 2, 3]
    np.testing.assert_array_equal(snap.state, np.arange(14))


def test_parts_arrive_in_any_order_and_stamps_do_not_mix():
    sync = FrameSync(CAMS, needs_state=True)
    sync.add_state(200, np.zeros(14))
    for cam in CAMS[:3]:
        sync.add_image(cam, 100, image(1))
        sync.add_image(cam, 200, image(2))
    assert sync.add_image("right_wrist", 200, image(2)).stamp_ns == 200


def test_a_newer_complete_moment_drops_an_older_incomplete_one():
    sync = FrameSync(CAMS, needs_state=False)
    sync.add_image("top", 100, image(1))
    for cam in CAMS:
        snap = sync.add_image(cam, 200, image(2))
    assert snap.stamp_ns == 200
    for cam in CAMS[1:]:
        assert sync.add_image(cam, 100, image(1)) is None, "late parts of a moment past are ignored"


def test_one_camera_without_state_completes_at_once():
    sync = FrameSync(["front"], needs_state=False)
    assert sync.add_image("front", 5, image(0)).frames[0].shape == (2, 2, 3)
    assert sync.add_state(6, np.zeros(2)) is None


def test_with_a_slop_a_rigs_unsynchronised_parts_make_a_moment_around_the_first_cameras_frame():
    sync = FrameSync(CAMS, needs_state=True, slop_ns=20)
    sync.add_state(95, np.zeros(14))
    sync.add_state(103, np.ones(14))
    for cam, stamp in zip(CAMS[1:], (90, 110, 99), strict=True):
        assert sync.add_image(cam, stamp, image(stamp % 7)) is None  # no frame of the first camera yet
    snap = sync.add_image("top", 100, image(1))
    assert snap.stamp_ns == 100 and [int(f[0, 0, 0]) for f in snap.frames] == [1, 90 % 7, 110 % 7, 99 % 7]
    np.testing.assert_array_equal(snap.state, np.ones(14))  # the nearer of the two states
    assert sync.add_state(104, np.ones(14)) is None  # that frame was acted on once
    assert sync.add_image("top", 200, image(2)) is None  # the others are too far from it


def test_a_negative_slop_is_refused():
    with pytest.raises(ValueError, match="slop_ns"):
        FrameSync(CAMS, needs_state=False, slop_ns=-1)
