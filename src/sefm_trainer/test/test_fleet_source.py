import threading
import time

import numpy as np
import pytest
import torch

from sefm_interfaces.episode_protocol import EpisodeMeta
from sefm_policy.checkpoint import read_manifest
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_reward.detector import StepsToGoDetector, label_episode
from sefm_trainer.bag_writer import EpisodeWriter
from sefm_trainer.fleet_source import FleetSource
from sefm_trainer.rollout import PracticeEpisode, run_episodes


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return EFM.build(EFMConfig(seed=1)).eval(), StepsToGoDetector(EFM.build(EFMConfig(seed=2)).eval(), 3.0)


# A reward model whose d reads the places its chain says, pooled over an episode's last 3 frames.
POOLED = EFMConfig(seed=2, reason=True, action_from="places", place_radices=[6, 4], steps_from="places", place_frames=3)


def write_bag(folder, name, ep: PracticeEpisode, version, termination=None):
    """What a robot's recorder writes for a practice episode."""
    period = 100_000_000
    with EpisodeWriter(folder, name) as w:
        w.instruction(0, ep.instruction)
        for t, frame in enumerate(ep.frames):
            w.image("front", t * period, frame)
            if t < ep.length:
                w.action_tokens(t * period + 1000, ep.tokens[t])
                w.planar_command(t * period + 1000, t * period, np.zeros(2), 0.1)
        meta = EpisodeMeta(
            instruction=ep.instruction,
            embodiment="language_table",
            length=ep.length,
            success=ep.ground_truth_success,
            termination=termination or ep.termination,
            seed=ep.seed,
            policy_version=version,
            extra={"ground_truth_success": ep.ground_truth_success},
        )
        w.commit(meta, len(ep.frames) * period)


class FakeFleet:
    """Plays the robots: on resume it lands ``episodes`` as bags of the announced version (and a
    stale one of an older version); a pause cuts one more short, landing a little later."""

    def __init__(self, folder, episodes, cut_short):
        self.folder, self.episodes, self.cut_short = folder, episodes, cut_short
        self.version, self.calls = None, []

    def publish_checkpoint(self, path, version):
        self.calls.append(("publish", version, read_manifest(path)["metadata"]["version"]))
        self.version = version

    def wait_for_version(self, version, timeout_s):
        self.calls.append(("wait", version))

    def set_paused(self, paused, timeout_s):
        self.calls.append(("pause", paused))
        if not paused:
            write_bag(self.folder, f"stale_{self.version}", self.episodes[0], self.version - 1)
            for i, ep in enumerate(self.episodes):
                write_bag(self.folder, f"ep_{self.version}_{i}", ep, self.version)
            return 0
        late = threading.Timer(
            0.3, write_bag, (self.folder, f"cut_{self.version}", self.cut_short, self.version, "abort")
        )
        late.start()
        return 1


# d reads ~50 untrained: 99 ends every episode on detection. Pooled places: practice reads them
# frame by frame as the episode runs, the fleet's learner over the whole landed episode.
@pytest.mark.parametrize("threshold, pooled", [(3.0, False), (99.0, False), (3.0, True)])
def test_fleet_episodes_give_the_learner_the_same_numbers_as_in_process_practice(models, tmp_path, threshold, pooled):
    reward_model = EFM.build(POOLED).eval() if pooled else models[1].model
    policy, detector = models[0], StepsToGoDetector(reward_model, threshold)
    practised = run_episodes(policy, detector, [11, 12, 13], max_steps=6, envs=3, generator=torch.Generator())
    fleet = FakeFleet(tmp_path / "bags", practised[:2], practised[2])
    source = FleetSource(tmp_path / "bags", fleet, tmp_path / "actors", poll_s=0.05, timeout_s=10)
    landed = source.collect(policy, detector, min_steps=sum(ep.length for ep in practised[:2]), loop=3)

    assert fleet.calls == [("publish", 3, 3), ("wait", 3), ("pause", False), ("pause", True)]
    assert [ep.seed for ep in landed] == [11, 12, 13]
    assert [ep.termination for ep in landed][-1] == "abort"
    assert source.stale == 1
    for mine, theirs in zip(landed, practised, strict=True):
        assert mine.instruction == theirs.instruction
        assert mine.detector_fired_at == theirs.detector_fired_at
        if mine.termination != "abort":  # the pause cut the last one short
            assert mine.detected_success == theirs.detected_success == (threshold > 50)
        assert np.array_equal(np.stack(mine.frames), np.stack(theirs.frames))
        assert np.array_equal(np.stack(mine.tokens), np.stack(theirs.tokens))
        assert np.allclose(mine.distances, theirs.distances, atol=1e-5)
        _, mine_returns = label_episode(mine.distances, 0.9)
        _, their_returns = label_episode(theirs.distances, 0.9)
        # d agrees to 1e-5 (batched vs one-episode forward passes); a return sums 2 such errors per step.
        assert np.allclose(mine_returns, their_returns, atol=2e-4)


def test_fleet_source_times_out_with_the_version_it_waited_for(models, tmp_path):
    policy, detector = models

    class SilentFleet(FakeFleet):
        def set_paused(self, paused, timeout_s):
            return 0

    source = FleetSource(tmp_path / "bags", SilentFleet(tmp_path / "bags", [], None), tmp_path / "actors",
                         poll_s=0.05, timeout_s=0.3)  # fmt: skip
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="version 1"):
        source.collect(policy, detector, min_steps=1, loop=1)
    assert time.monotonic() - start < 5


def test_fleet_source_keeps_only_the_newest_actor_checkpoints(models, tmp_path):
    policy, detector = models
    practised = run_episodes(policy, detector, [5], max_steps=3, envs=1)
    fleet = FakeFleet(tmp_path / "bags", practised, practised[0])
    source = FleetSource(tmp_path / "bags", fleet, tmp_path / "actors", poll_s=0.05, timeout_s=10)
    for loop in (1, 2, 3):
        source.collect(policy, detector, min_steps=1, loop=loop)
    assert sorted(p.name for p in (tmp_path / "actors").iterdir()) == ["actor_00002", "actor_00003"]
