import numpy as np
import pytest
import torch

from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer import stage2
from sefm_trainer.rollout import PracticeEpisode
from sefm_trainer.stage2 import GymSource, Stage2Config, buffer_steps, self_improve, update


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    return save_checkpoint(EFM.build(EFMConfig(seed=1)), root / "policy"), save_checkpoint(
        EFM.build(EFMConfig(seed=2)), root / "reward"
    )


def small(checkpoints, out, **kw):
    values = dict(policy=str(checkpoints[0]), reward_model=str(checkpoints[1]), out=str(out), loops=2, updates=2,
                  minibatch=4, envs=2, max_steps=5, success_threshold=0.0)  # fmt: skip
    values.update(kw)
    return Stage2Config(**values)


def fake_episode(length, seed=0):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(length + 1)]
    return PracticeEpisode(
        seed=seed,
        instruction="push the red moon to the blue cube",
        frames=frames,
        tokens=[rng.integers(0, 2, 4) for _ in range(length)],
        distances=list(np.linspace(20, 10, length + 1)),
    )


def test_buffer_holds_exactly_n_times_b_distinct_steps(checkpoints, tmp_path):
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4)
    episodes = [fake_episode(5, seed=s) for s in range(3)]  # 15 steps for a 12-step buffer
    steps = buffer_steps(episodes, cfg, np.random.default_rng(0))
    assert len(steps) == 12 and len({(id(s.episode), s.t) for s in steps}) == 12
    assert all(s.ret == pytest.approx(sum(0.9**i * 2.0 for i in range(5 - s.t))) for s in steps)  # r = 2 per step
    with pytest.raises(ValueError, match="N×B = 12"):
        buffer_steps(episodes[:2], cfg, np.random.default_rng(0))


def test_each_buffered_step_trains_exactly_once(checkpoints, tmp_path, monkeypatch):
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4)
    steps = buffer_steps([fake_episode(6, seed=s) for s in range(2)], cfg, np.random.default_rng(1))
    seen = []
    real = stage2.reinforce_loss

    def recording(model, obs, tokens, returns, coef):
        seen.extend(returns)
        return real(model, obs, tokens, returns, coef)

    monkeypatch.setattr(stage2, "reinforce_loss", recording)
    policy = load_checkpoint(checkpoints[0])
    update(policy, torch.optim.SGD(policy.parameters(), lr=0.0), steps, cfg)
    assert sorted(seen) == sorted(s.ret for s in steps)


def test_loops_keep_the_reward_model_and_vision_tower_frozen(checkpoints, tmp_path):
    seen = {}

    class Recording(GymSource):
        def collect(self, policy, detector, min_steps, loop):
            seen["detector"] = detector
            return super().collect(policy, detector, min_steps, loop)

    cfg = small(checkpoints, tmp_path / "run")
    result = self_improve(cfg, source=Recording(cfg), progress=False)
    assert [h["loop"] for h in result["history"]] == [1, 2]
    assert all(h["episodes"] >= 1 and h["extra_episodes"] > 0 for h in result["history"])
    frozen = load_checkpoint(checkpoints[1]).backbone.state_dict()
    after = seen["detector"].model.backbone.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    start, end = load_checkpoint(checkpoints[0]).backbone, load_checkpoint(tmp_path / "run" / "last").backbone
    vision = {k for k in start.state_dict() if "vision_tower" in k}
    assert all(torch.equal(start.state_dict()[k], end.state_dict()[k]) for k in vision)
    assert any(
        not torch.equal(start.state_dict()[k], end.state_dict()[k]) for k in start.state_dict() if k not in vision
    )
    assert (tmp_path / "run" / "best").is_dir() and (tmp_path / "run" / "stage2.jsonl").read_text().count("\n") == 2


def test_gym_source_is_deterministic_from_its_seed(checkpoints, tmp_path):
    from sefm_reward.detector import StepsToGoDetector

    cfg = small(checkpoints, tmp_path)
    policy = load_checkpoint(checkpoints[0])
    detector = StepsToGoDetector(load_checkpoint(checkpoints[1]), 0.0)
    a = GymSource(cfg).collect(policy, detector, 6, loop=1)
    b = GymSource(cfg).collect(policy, detector, 6, loop=1)
    assert [ep.seed for ep in a] == [ep.seed for ep in b]
    assert all(np.array_equal(np.stack(x.tokens), np.stack(y.tokens)) for x, y in zip(a, b, strict=True))
