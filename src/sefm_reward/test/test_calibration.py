import numpy as np
import pytest

from sefm_reward.calibration import (
    plot_sweep,
    score_on_practice,
    score_threshold,
    spearman_on_successes,
    sweep,
    sweep_on_practice,
)


def _ramp(length: int, end: float) -> np.ndarray:
    """d falling from 20 to 10 over frames 0..length-1, then ``end`` at the goal (frame length)."""
    return np.r_[np.linspace(20.0, 10.0, length), end]


def test_a_detector_firing_only_at_the_goal_is_precise_and_complete():
    episodes = [_ramp(10, 1.0), _ramp(15, 0.5), np.full(12, 12.0)]
    score = score_threshold(episodes, [True, True, False], threshold=2.0)
    assert (score.precision, score.recall, score.early, score.false_on_failures) == (1.0, 1.0, 0.0, 0.0)


def test_firing_before_the_goal_and_on_failures_counts_against_precision():
    early = np.r_[20.0, 1.0, 15.0, 12.0, 9.0, 6.0, 3.0, 1.0]  # dips to 1 at t=1, goal at t=7
    failed = np.r_[20.0, 10.0, 1.5, 10.0]
    score = score_threshold([early, _ramp(10, 1.0), failed], [True, True, False], threshold=2.0, tolerance=2)
    assert score.early == 0.5 and score.recall == 0.5 and score.false_on_failures == 1.0
    assert score.precision == pytest.approx(1 / 3)


def test_tolerance_accepts_firing_just_before_the_goal():
    d = np.r_[20.0, 10.0, 2.0, 1.8, 1.0]  # fires at t=2, goal at t=4
    assert score_threshold([d], [True], 2.0, tolerance=2).recall == 1.0
    assert score_threshold([d], [True], 2.0, tolerance=1).early == 1.0


def test_a_demonstration_held_past_its_goal_counts_firings_after_the_goal_as_right():
    held = np.r_[np.linspace(20.0, 4.0, 8), 3.0, 1.5, 1.0, 1.0]  # goal at frame 8, held 3 frames
    assert score_threshold([held], [True], 2.0, tolerance=0).recall == 0.0  # fires on frame 9: past the end
    score = score_threshold([held], [True], 2.0, tolerance=0, goals=[8])
    assert (score.precision, score.recall, score.early) == (1.0, 1.0, 0.0)
    assert score_threshold([held], [True], 3.5, tolerance=0, goals=[9]).early == 1.0
    result = sweep([held], [True], [2.0], tolerance=0, goals=[8])
    assert result["d_at_goal_median"] == 3.0 and result["d_past_goal_median"] == 1.0
    assert spearman_on_successes([held], [True], goals=[8]) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="goal frame within each episode"):
        score_threshold([held], [True], 2.0, goals=[12])


def test_sweep_recommends_the_smallest_threshold_with_best_recall_at_the_precision_asked():
    # goals read 1.0 and 3.0; the failure never drops below 6
    episodes = [_ramp(10, 1.0), _ramp(10, 3.0), np.full(8, 6.0)]
    result = sweep(episodes, [True, True, False], thresholds=[0.5, 1.0, 2.0, 3.0, 4.0, 7.0], tolerance=0)
    assert result["recommended_threshold"] == 3.0
    by_s = {s["threshold"]: s for s in result["scores"]}
    assert by_s[1.0]["recall"] == 0.5 and by_s[7.0]["precision"] < 0.9 and by_s[0.5]["precision"] is None


def test_sweep_recommends_nothing_when_d_does_not_tell_success_apart(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [rng.uniform(5, 20, size=30) for _ in range(40)]
    result = sweep(episodes, [i % 2 == 0 for i in range(40)], thresholds=np.arange(1, 21, 1.0))
    assert result["recommended_threshold"] is None and abs(result["spearman_on_successes"]) < 0.2
    plot_sweep(result, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_scoring_needs_a_successful_episode_and_matching_flags():
    with pytest.raises(ValueError, match="successful"):
        score_threshold([_ramp(5, 1.0)], [False], 2.0)
    with pytest.raises(ValueError, match="one success flag per episode"):
        score_threshold([_ramp(5, 1.0)], [True, False], 2.0)


def test_spearman_reads_whether_d_orders_the_frames_of_successes_by_their_steps_to_go():
    falling = [np.sqrt(np.arange(12.0)[::-1]), np.sqrt(np.arange(8.0)[::-1])]
    assert spearman_on_successes([*falling, np.full(5, 2.0)], [True, True, False]) == pytest.approx(1.0)
    assert spearman_on_successes([d[::-1] for d in falling], [True, True]) < -0.5
    # Falling within each episode but on scales of their own: the pooled order is off.
    assert spearman_on_successes([falling[0], falling[1] * 10], [True, True]) < 0.9
    assert spearman_on_successes([_ramp(5, 1.0)], [False]) is None


def test_on_practice_a_firing_is_right_only_on_a_frame_where_the_task_is_done():
    d = np.r_[20.0, 10.0, 1.5, 8.0, 1.0, 1.0]
    done = np.r_[False, False, False, False, True, True]
    # fires at t=2, two steps before the goal: the tolerance of demonstrations calls it right, practice does not
    assert score_threshold([d[:5]], [True], 2.0, tolerance=2).recall == 1.0
    score = score_on_practice([d], [done], 2.0)
    assert (score.precision, score.recall, score.false_on_failures) == (0.0, 0.0, None)
    # a lower s fires at t=4, the first done frame
    assert (score_on_practice([d], [done], 1.0).precision, score_on_practice([d], [done], 1.0).recall) == (1.0, 1.0)


def test_on_practice_a_late_firing_counts_while_the_task_stays_done_and_failures_count_against():
    reached = (np.r_[9.0, 6.0, 3.0, 2.5, 1.0], np.r_[False, False, True, True, True])  # fires at t=4, done since t=2
    overshot = (np.r_[9.0, 6.0, 3.0, 2.5, 1.0], np.r_[False, False, True, False, False])  # done at t=2, pushed past
    failed = (np.r_[9.0, 1.0, 9.0], np.r_[False, False, False])
    never_fired = (np.r_[9.0, 8.0, 7.0], np.r_[False, True, True])
    d, done = zip(reached, overshot, failed, never_fired, strict=True)
    score = score_on_practice(list(d), list(done), threshold=1.5)
    assert score.precision == pytest.approx(1 / 3) and score.recall == pytest.approx(1 / 3)
    assert score.false_on_failures == 1.0
    result = sweep_on_practice(list(d), list(done), [1.0, 1.5], min_precision=0.3)
    assert result["task_done"] == 3 and result["recommended_threshold"] == 1.0
    with pytest.raises(ValueError, match="task gets done"):
        score_on_practice([failed[0]], [failed[1]], 1.0)
    with pytest.raises(ValueError, match="verdicts"):
        score_on_practice([np.r_[1.0, 2.0]], [np.r_[True]], 1.0)
