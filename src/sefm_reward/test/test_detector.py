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


def test_d_pooled_over_frames_is_told_the_median_of_the_places_said_on_an_episodes_last_frames(moving_chain):
    model, obs, said = moving_chain
    obs, sizes = obs[:5], model.action_slot_sizes[: model.embodiment.reasoning_slots].numpy()
    detector, tokenizer = StepsToGoDetector(model, 0.0), model.embodiment.action
    places = tokenizer.decode_places(said[:5])
    medians = np.stack([np.median(places[max(t - 2, 0) : t + 1], axis=0) for t in range(5)])

    def told(tokens, frames=obs):
        with torch.no_grad():
            return (model.steps_to_go_log_probs(frames, tokens).exp() @ model.steps_centres).numpy()

    pooled = detector.episode_distances(obs)
    np.testing.assert_allclose(pooled, told(tokenizer.encode_places(medians)), atol=1e-5)
    alone = told(said[:5])
    assert pooled[0] == pytest.approx(alone[0], abs=1e-5) and not np.allclose(pooled, alone, atol=1e-3)
    # Read live, a frame or two at a time as a reward node or practice reads them: the same d.
    window = detector.window()
    live = [detector.distances(obs[i:j], [window] * (j - i)) for i, j in ((0, 2), (2, 3), (3, 5))]
    np.testing.assert_allclose(np.concatenate(live), pooled, atol=1e-5)
    # Two episodes in one batch keep their own windows.
    fresh = detector.distances(obs[3:5], [detector.window(), detector.window()])
    np.testing.assert_allclose(fresh, alone[3:5], atol=1e-5)
    # One frame's misread is outvoted by the frames around it.
    said[:] = said[0]
    said[2, :4] = (said[0, :4] + 3) % sizes[:4]
    steady = told(said[[0, 0, 0, 0, 0]])
    np.testing.assert_allclose(detector.episode_distances(obs), steady, atol=1e-5)
    assert told(said[:5])[2] != pytest.approx(steady[2], abs=1e-3)
    with pytest.raises(ValueError, match="window"):
        detector.distances(obs)
    with pytest.raises(ValueError, match="place_frames"):
        EFMConfig(place_frames=2)


def test_a_verdict_on_frame_zero_never_ends_an_episode():
    assert not detects_success(0, True) and detects_success(1, True) and not detects_success(5, False)
    assert detector_ending([1.0, 5.0, 2.0, 1.0], 3.0) == 2  # d <= s on frame 0 is ignored
    assert detector_ending([1.0, 5.0, 4.0], 3.0) is None
