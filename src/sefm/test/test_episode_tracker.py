from sefm.episode_tracker import EpisodeTracker


def test_episode_ends_at_max_steps_counted_in_actions():
    t = EpisodeTracker(max_steps=3)
    t.start({"instruction": "push the red moon to the blue cube"})
    assert [t.on_action() for _ in range(3)] == [None, None, "max_steps"]
    meta = t.finish("max_steps", detected_success=False)
    assert meta["length"] == 3 and meta["termination"] == "max_steps" and not meta["extra"]["detected_success"]


def test_detected_success_needs_an_action_in_this_episode():
    t = EpisodeTracker(max_steps=10)
    assert t.on_detected_success(True, frame_ns=5) is None  # nothing running
    t.start({}, start_ns=100)
    assert t.on_detected_success(True, frame_ns=110) is None  # frame 0, before any action
    t.on_action()
    assert t.on_detected_success(True, frame_ns=110) is None  # frame 0's verdict, arriving late
    assert t.on_detected_success(False, frame_ns=120) is None and t.on_detected_success(True, frame_ns=120) == "success"


def test_a_verdict_on_the_last_episodes_frame_is_matched_by_stamp_not_by_arrival():
    t = EpisodeTracker(max_steps=10)
    t.start({}, start_ns=100)
    t.on_action()
    t.on_action()
    assert t.on_detected_success(True, frame_ns=90) is None  # stamped before this episode began
    assert t.on_detected_success(True, frame_ns=100) is None
    assert t.on_detected_success(False, frame_ns=105) is None  # this episode's first judged frame
    assert t.on_detected_success(True, frame_ns=130) == "success"


def test_the_detector_never_fills_the_ground_truth_success_field():
    t = EpisodeTracker(max_steps=10)
    t.start({"seed": 4})
    t.on_action()
    meta = t.finish("success", detected_success=True)
    assert meta["success"] is None and meta["extra"]["detected_success"] is True and meta["seed"] == 4
    assert t.on_action() is None  # finished episodes count nothing


def test_an_episode_without_a_step_for_the_stall_timeout_has_stalled():
    tracker = EpisodeTracker(max_steps=10, stall_timeout_s=2.0)
    assert not tracker.stalled(now=100.0)  # no episode running
    tracker.start({}, now=100.0)
    assert not tracker.stalled(now=101.9)
    tracker.on_action(now=101.9)
    assert not tracker.stalled(now=103.8) and tracker.stalled(now=104.0)
    assert not EpisodeTracker(max_steps=10).stalled(now=1e9)  # 0: never
