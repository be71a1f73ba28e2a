import threading

import numpy as np

from sefm_reward.detector import StepsToGoDetector
from sefm_reward.reward_host import RewardHost


def test_a_reward_host_pools_each_robots_places_over_that_robots_own_frames(moving_chain):
    model, obs, _ = moving_chain
    detector, errors = StepsToGoDetector(model, 0.0), []
    host = RewardHost(detector, errors.append)
    frames = {"robot_0": obs[0::2], "robot_1": obs[1::2]}  # interleaved in time, each its own episode
    windows = {robot: detector.window() for robot in frames}
    got = {robot: [] for robot in frames}
    try:
        for t in range(3):
            delivered = {robot: threading.Event() for robot in frames}
            for robot in frames:

                def deliver(d, robot=robot, done=delivered[robot]):
                    got[robot].append(d)
                    done.set()

                host.submit(robot, frames[robot][t], windows[robot], deliver)
            assert all(event.wait(30) for event in delivered.values())
    finally:
        host.close()
    assert not errors and sum(host.batch_sizes.values()) >= 3
    for robot, own in frames.items():
        np.testing.assert_allclose(got[robot], detector.episode_distances(own), atol=1e-5)
    shared = detector.episode_distances(obs)  # one window over both robots' frames, in time order
    assert not np.allclose(got["robot_0"] + got["robot_1"], np.r_[shared[0::2], shared[1::2]], atol=1e-3)
