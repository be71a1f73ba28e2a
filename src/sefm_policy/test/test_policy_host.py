import time
from types import SimpleNamespace

import numpy as np
import pytest

from sefm_policy.checkpoint import CheckpointError, save_checkpoint
from sefm_policy.policy_host import PolicyHost, Sampling
from sefm_policy.testing import table_observations

GREEDY = Sampling(greedy=True)


@pytest.fixture
def checkpoint(tiny, tmp_path):
    return save_checkpoint(tiny, tmp_path / "policy", {"version": 1})


def test_frames_of_several_robots_are_answered_in_one_pass_each_with_its_own_action(tiny, checkpoint):
    host = PolicyHost(checkpoint, GREEDY)
    observations = table_observations(3)
    answers: dict[int, tuple] = {}
    for robot, obs in enumerate(observations):
        host.submit(obs, lambda action, tokens, robot=robot: answers.setdefault(robot, (action, tokens)))
    assert host.flush() == 3 and host.batch_sizes == {3: 1} and host.pending == []
    for robot, obs in enumerate(observations):
        alone = tiny.sample_actions([obs], greedy=True)
        np.testing.assert_array_equal(answers[robot][1], alone.tokens[0])
        np.testing.assert_allclose(answers[robot][0], alone.actions[0])


def test_each_robot_gets_the_row_of_its_own_frame(checkpoint, monkeypatch):
    """An untrained model answers every frame alike, so a stand-in pass tags each row with its frame."""
    host = PolicyHost(checkpoint, GREEDY)

    def tagged(observations, **_):
        tags = np.array([[len(obs.instruction)] for obs in observations])
        return SimpleNamespace(actions=tags.astype(float), tokens=tags)

    monkeypatch.setattr(host.model, "sample_actions", tagged)
    observations = table_observations(3)
    got = {}
    for robot, obs in enumerate(observations):
        host.submit(obs, lambda action, tokens, robot=robot: got.setdefault(robot, int(tokens[0])))
    host.flush()
    assert got == {robot: len(obs.instruction) for robot, obs in enumerate(observations)}
    assert len(set(got.values())) == 3


def test_a_frame_waits_for_the_other_robots_but_no_longer_than_the_window(checkpoint):
    host = PolicyHost(checkpoint, GREEDY, window_s=0.2)
    assert not host.ready(expected=2)  # nothing pending
    obs = table_observations(2)
    host.submit(obs[0], lambda *_: None)
    assert not host.ready(expected=2) and 0.0 < host.wait_s() <= 0.2
    host.submit(obs[1], lambda *_: None)
    assert host.ready(expected=2)
    host.flush()
    host.submit(obs[0], lambda *_: None)
    time.sleep(0.25)
    assert host.wait_s() == 0.0 and host.ready(expected=2)
    with pytest.raises(ValueError, match="window_s"):
        PolicyHost(checkpoint, GREEDY, window_s=-1)


def test_a_reload_swaps_once_per_announcement_and_keeps_the_model_on_a_bad_checkpoint(tiny_aloha, checkpoint, tmp_path):
    host = PolicyHost(checkpoint, GREEDY)
    first = host.model
    assert host.reload(checkpoint, 1) is False and host.model is first  # what it already acts with
    newer = save_checkpoint(first, tmp_path / "newer", {"version": 2})
    assert host.reload(newer, 2) is True and host.model is not first and host.version == 2
    assert host.reload(newer, 2) is False  # the next robot of the host hearing the same announcement
    acting = host.model
    with pytest.raises(ValueError, match="embodiment"):
        host.reload(save_checkpoint(tiny_aloha, tmp_path / "aloha", {"version": 3}), 3)
    with pytest.raises(CheckpointError):
        host.reload(tmp_path / "missing", 4)
    assert host.model is acting and host.version == 2
