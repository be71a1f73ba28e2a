import numpy as np
import pytest

from sefm_trainer.bag_reader import read_episode
from sefm_trainer.rollout import PracticeEpisode
from sefm_trainer.rollout_bags import write_rollout


def _episode(length: int = 3) -> PracticeEpisode:
    rng = np.random.default_rng(0)
    ep = PracticeEpisode(7, "push the red moon to the blue cube", [rng.integers(0, 255, (96, 96, 3), np.uint8)])
    for t in range(length):
        ep.tokens.append(np.array([t % 2, t + 1, 0, 2]))
        ep.actions.append(np.array([(-1) ** (t % 2) * 0.01 * (t + 1), 0.02]))
        ep.frames.append(rng.integers(0, 255, (96, 96, 3), np.uint8))
    ep.ground_truth_success, ep.termination = True, "success"
    return ep


def test_a_rollout_bag_reads_back_as_the_episode_it_was(tmp_path):
    ep = _episode()
    back = read_episode(write_rollout(ep, tmp_path, "block2block", "runs/policy/best_bc"))
    assert back.meta.seed == 7 and back.meta.success and back.meta.length == 3 and back.meta.termination == "success"
    assert back.meta.instruction == ep.instruction and back.meta.policy_version == "runs/policy/best_bc"
    np.testing.assert_array_equal(back.action_tokens, np.stack(ep.tokens))
    np.testing.assert_allclose(back.actions, np.stack(ep.actions), atol=1e-9)
    np.testing.assert_array_equal(back.frames["front"], np.stack(ep.frames))


def test_a_rollout_missing_frames_or_off_the_table_is_refused(tmp_path):
    short = _episode()
    short.frames.pop()
    with pytest.raises(ValueError, match="frames"):
        write_rollout(short, tmp_path, "block2block", "p")
    with pytest.raises(ValueError, match="LanguageTable"):
        write_rollout(_episode(), tmp_path, "insertion", "p")
    assert not any(tmp_path.iterdir())
