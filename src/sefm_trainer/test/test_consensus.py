import numpy as np
import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.consensus import (
    TARGET,
    consensus_loss,
    consensus_tokens,
    labelled_slots,
    read_places,
    target_slots,
)
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


def test_a_reader_with_other_place_digits_labels_the_policys_target_in_the_policys_digits(reasoner):
    reader = EFM.build(EFMConfig(reason=True, place_radices=[6, 8], seed=5)).eval()
    tokenizer = reasoner.embodiment.action
    ep = wandering_episode(tokenizer)
    said = read_places(reader, [ep.observation(t) for t in range(ep.length)], chunk=4)
    assert said.shape == (ep.length, 3, 2)
    labelled = consensus_tokens(np.stack(ep.tokens), tokenizer, said)
    median = np.median(said[:, TARGET], axis=0)
    assert (labelled[:, target_slots(tokenizer)] == tokenizer.place.encode(median)).all()
    own = consensus_tokens(np.stack(ep.tokens), tokenizer)
    assert not (labelled[0, target_slots(tokenizer)] == own[0, target_slots(tokenizer)]).all()


def test_a_reader_labels_only_the_digits_its_places_share_with_the_policys(reasoner):
    mine = reasoner.embodiment.action  # [6, 4]: the target's slots are 4..7, its coarse pair 4, 5
    finer = EFM.build(EFMConfig(reason=True, place_radices=[6, 8])).embodiment.action
    other = EFM.build(EFMConfig(reason=True, place_radices=[8, 8])).embodiment.action
    assert labelled_slots(mine) == labelled_slots(mine, mine) == [4, 5, 6, 7]
    assert labelled_slots(mine, finer) == [4, 5]
    assert labelled_slots(mine, other) == []


def test_the_reward_model_as_reader_pulls_the_policy_toward_its_places_not_the_policys(reasoner, tmp_path):
    reader = EFM.build(EFMConfig(reason=True, place_radices=[6, 8], seed=5)).eval()
    ep = wandering_episode(reasoner.embodiment.action)
    said = read_places(reader, [ep.observation(t) for t in range(ep.length)])
    taught = consensus_tokens(np.stack(ep.tokens), reasoner.embodiment.action, said)
    policy = save_checkpoint(reasoner, tmp_path / "policy")
    cfg = Stage2Config(policy=str(policy), reward_model=str(policy), out=str(tmp_path / "run"), updates=3,
                       minibatch=2, consensus_coef=1.0, consensus_from="reward_model")  # fmt: skip
    model = EFM.build(EFMConfig(reason=True, place_radices=[6, 4], seed=3)).train()

    def taught_loss():
        with torch.no_grad():
            observations = [ep.observation(t) for t in range(ep.length)]
            return consensus_loss(model, observations, taught, slots=[4, 5]).loss.item()

    before = taught_loss()
    steps = buffer_steps([ep], cfg, np.random.default_rng(0))
    update(model, torch.optim.SGD(model.parameters(), lr=0.03), steps, cfg, reader=reader)
    assert taught_loss() < before - 0.01


def test_a_reward_model_without_a_chain_cannot_be_the_reader(reasoner, tmp_path):
    policy = save_checkpoint(reasoner, tmp_path / "policy")
    plain = save_checkpoint(EFM.build(EFMConfig(seed=1)), tmp_path / "plain")
    cfg = Stage2Config(policy=str(policy), reward_model=str(plain), out=str(tmp_path / "run"), consensus_coef=1.0,
                       consensus_from="reward_model")  # fmt: skip
    with pytest.raises(ConfigError, match="consensus_from"):
        self_improve(cfg, progress=False)


def test_a_reward_model_whose_places_share_no_digit_with_the_policys_cannot_be_the_reader(reasoner, tmp_path):
    policy = save_checkpoint(reasoner, tmp_path / "policy")
    other = save_checkpoint(EFM.build(EFMConfig(reason=True, place_radices=[8, 8])), tmp_path / "other")
    cfg = Stage2Config(policy=str(policy), reward_model=str(other), out=str(tmp_path / "run"), consensus_coef=1.0,
                       consensus_from="reward_model")  # fmt: skip
    with pytest.raises(ConfigError, match=r"consensus_from.*\(8, 8\)"):
        self_improve(cfg, progress=False)
