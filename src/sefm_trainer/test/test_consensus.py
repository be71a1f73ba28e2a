import numpy as np
import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.consensus import TARGET, consensus_loss, consensus_tokens, target_slots
from sefm_trainer.rollout import PracticeEpisode
from sefm_trainer.stage2 import Stage2Config, buffer_steps, self_improve, update


@pytest.fixture(scope="module")
def reasoner():
    return EFM.build(EFMConfig(reason=True, place_radices=[6, 4], seed=3))


def wandering_episode(tokenizer, length=6, seed=0):
    """The target said at one place in every step but one; the object and effector moving."""
    rng = np.random.default_rng(seed)
    places = rng.uniform(0.1, 0.9, (length, 3, 2))
    places[:, TARGET] = [0.3, 0.7]
    places[2, TARGET] = [0.8, 0.2]
    tokens = tokenizer.encode(rng.uniform(-0.05, 0.05, (length, 2)), places)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(length + 1)]
    return PracticeEpisode(seed=seed, instruction="push the red moon to the blue cube", frames=frames,
                           tokens=list(tokens), distances=[10.0] * (length + 1))  # fmt: skip


def test_every_step_gets_the_median_target_place_and_keeps_its_other_tokens(reasoner):
    tokenizer = reasoner.embodiment.action
    ep = wandering_episode(tokenizer)
    said = np.stack(ep.tokens)
    labelled = consensus_tokens(said, tokenizer)
    target = target_slots(tokenizer)
    assert (labelled[:, target] == tokenizer.place.encode(np.array([0.3, 0.7]))).all()
    assert not (said[2, target] == labelled[2, target]).all()  # the stray step is relabelled
    rest = np.ones(said.shape[1], bool)
    rest[target] = False
    assert (labelled[:, rest] == said[:, rest]).all()


def test_self_training_raises_the_consensus_target_where_the_policy_strayed(reasoner, tmp_path):
    policy = save_checkpoint(reasoner, tmp_path / "policy")
    ep = wandering_episode(reasoner.embodiment.action)
    base = dict(policy=str(policy), reward_model=str(policy), out=str(tmp_path / "run"), updates=3, minibatch=2)
    labelled = consensus_tokens(np.stack(ep.tokens), reasoner.embodiment.action)

    def stray_loss(model):
        with torch.no_grad():
            return consensus_loss(model, [ep.observation(2)], labelled[2:3]).loss.item()

    moved = {}
    for coef in (0.0, 1.0):
        cfg = Stage2Config(**base, consensus_coef=coef)
        steps = buffer_steps([ep], cfg, np.random.default_rng(0))
        model = EFM.build(EFMConfig(reason=True, place_radices=[6, 4], seed=3)).train()
        before = stray_loss(model)
        terms = update(model, torch.optim.SGD(model.parameters(), lr=0.1), steps, cfg)
        moved[coef] = stray_loss(model) - before
        assert ("consensus/loss" in terms[0]) == (coef > 0)
    assert moved[0.0] == pytest.approx(0.0, abs=1e-6) and moved[1.0] < -0.01, moved  # no progress: REINFORCE is 0


def test_self_training_a_policy_without_a_chain_is_refused(tmp_path):
    plain = save_checkpoint(EFM.build(EFMConfig(seed=1)), tmp_path / "plain")
    cfg = Stage2Config(policy=str(plain), reward_model=str(plain), out=str(tmp_path / "run"), consensus_coef=1.0)
    with pytest.raises(ConfigError, match="consensus_coef"):
        self_improve(cfg, progress=False)
