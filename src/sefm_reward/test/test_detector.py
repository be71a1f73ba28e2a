import numpy as np
import pytest
import torch

from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_policy.testing import table_observations
from sefm_reward.detector import Readings, StepsToGoDetector, detector_ending, detects_success, label_episode


def test_rewards_are_drops_in_distance_and_returns_discount_them():
    rewards, returns = label_episode([10.0, 8.0, 9.0, 4.0], gamma=0.9)
    np.testing.assert_allclose(rewards, [2.0, -1.0, 5.0])
    np.testing.assert_allclose(returns, [2.0 + 0.9 * (-1.0) + 0.81 * 5.0, -1.0 + 0.9 * 5.0, 5.0])


def test_success_bonus_lands_on_the_last_step_only_when_successful():
    r, _ = label_episode([3.0, 2.0, 1.0], success_bonus=0.5, success=True)
    np.testing.assert_allclose(r, [1.0, 1.5])
    r, _ = label_episode([3.0, 2.0, 1.0], success_bonus=0.5, success=False)
    np.testing.assert_allclose(r, [1.0, 1.0])
    with pytest.raises(ValueError, match="two frames"):
        label_episode([3.0])


def test_readings_give_d_reward_and_success_and_reset_between_episodes():
    model = EFM.build(EFMConfig())
    obs = table_observations(3)
    with torch.no_grad():
        d = model.expected_steps_to_go(obs).numpy()
    det = StepsToGoDetector(model, success_threshold=0.0)
    np.testing.assert_allclose(det.distances(obs), d, atol=1e-4)
    assert not any(p.requires_grad for p in model.parameters())  # frozen
    readings = Readings(success_threshold=float(d[1]) + 1e-3)
    first = readings.read(d[0])
    assert first.reward is None and first.steps_to_go == pytest.approx(d[0])
    second = readings.read(d[1])
    assert second.reward == pytest.approx(d[0] - d[1]) and second.success
    readings.reset()
    assert readings.read(d[2]).reward is None
    with pytest.raises(ValueError, match="success_threshold"):
        Readings(-1.0)


def test_a_verdict_on_frame_zero_never_ends_an_episode():
    assert not detects_success(0, True) and detects_success(1, True) and not detects_success(5, False)
    assert detector_ending([1.0, 5.0, 2.0, 1.0], 3.0) == 2  # d <= s on frame 0 is ignored
    assert detector_ending([1.0, 5.0, 4.0], 3.0) is None
