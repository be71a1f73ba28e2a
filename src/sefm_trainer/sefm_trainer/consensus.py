"""Labels from practice in Stage 2: an episode's consensus on where its target block is.

The block an instruction names as the target stays put while another is pushed to it. The policy
says anew at every step where that target is; on held-out demonstrations the place it says is
within a block width in 79% of steps, the median of what it said over the episode in 87%
(docs/results, session 13). So every practised frame gets the episode's median target place as
a label: supervision from practice, with no ground truth. Who says the places is a choice
(``consensus_from``): the policy itself (self-training, the way a model's agreeing guesses
label its disagreeing ones; measured on the 4-block rung it does not generalise: 16 scenes a loop
are learned by heart) or the frozen reward model, a Stage 1 checkpoint trained apart from the
policy that reads the 4-block target better than it does (90% of steps against 78%,
session 14): a teacher that is not the student, on scenes the demonstrations never showed. A
reader labels only the digits its own places resolve: the 4-block reward model writes a place to
4 px where the policy writes 2 px, and its cell centres taught as the policy's fine digits fought
the demonstrations (KL to Stage 1 3 nats in five loops, session 14). Measured either way, a few
dozen scenes a loop do not teach a rule: at weight 1 the teacher's right labels made held-out
places worse too, at 0.1 they changed nothing."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.losses import LossOutput
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_policy.tokenizers import GroundedActionTokenizer

TARGET = 1  # the chain's places in order: the object to move, its target, the effector


def check_policy(policy: EFM, reader: EFM | None = None) -> None:
    """A clear error where ``consensus_coef`` is set for a policy, or a reader, without a chain of
    places, or for a reader whose places share no digit with the policy's."""
    if not isinstance(policy.embodiment.action, GroundedActionTokenizer):
        raise ConfigError("consensus_coef > 0 labels a chain's target place, and the policy does not reason")
    if reader is None:
        return
    if not isinstance(reader.embodiment.action, GroundedActionTokenizer):
        raise ConfigError("consensus_from: reward_model reads places off the reward model, and it does not reason")
    if not labelled_slots(policy.embodiment.action, reader.embodiment.action):
        mine, theirs = policy.embodiment.action.place.radices, reader.embodiment.action.place.radices
        raise ConfigError(
            f"consensus_from: the reward model's place digits {theirs} share no level with the policy's {mine}"
        )


def target_slots(tokenizer: GroundedActionTokenizer) -> slice:
    """Where the target place's digits sit among a step's tokens."""
    per = len(tokenizer.place.slot_sizes)
    return slice(TARGET * per, (TARGET + 1) * per)


def labelled_slots(tokenizer: GroundedActionTokenizer, reader: GroundedActionTokenizer | None = None) -> list[int]:
    """The target place's slots a consensus labels: all its digits when the policy says the places
    itself; for a reader, the leading digit pairs whose cells it shares with the policy (``[6, 4]``
    against ``[6, 8]``: which patch, not where in it)."""
    slots = target_slots(tokenizer)
    if reader is None:
        return list(range(slots.start, slots.stop))
    shared = 0
    for mine, theirs in zip(tokenizer.place.radices, reader.place.radices, strict=False):
        if mine != theirs:
            break
        shared += 1
    return list(range(slots.start, slots.start + 2 * shared))


def consensus_tokens(
    tokens: np.ndarray,
    tokenizer: GroundedActionTokenizer,
    said: np.ndarray | None = None,
) -> np.ndarray:
    """An episode's step tokens (T, slots) with each step's target place replaced by the median,
    over the episode, of the target places said: in ``tokens`` themselves, or in ``said`` (T, 3, 2),
    another model's places (``read_places``)."""
    tokens = np.asarray(tokens)
    said = tokenizer.decode_places(tokens) if said is None else np.asarray(said)
    labelled = tokens.copy()
    labelled[:, target_slots(tokenizer)] = tokenizer.place.encode(np.median(said[:, TARGET], axis=0))
    return labelled


def episode_consensus(episode, tokenizer: GroundedActionTokenizer, reader: EFM | None = None) -> np.ndarray:
    """A practised episode's step tokens labelled with its consensus target (``consensus_tokens``),
    the places said by ``reader`` where given, else by the policy's own tokens."""
    said = None
    if reader is not None:
        said = read_places(reader, [episode.observation(t) for t in range(episode.length)])
    return consensus_tokens(np.stack(episode.tokens), tokenizer, said)


@torch.no_grad()
def read_places(reader: EFM, observations: Sequence[Observation], chunk: int = 64) -> np.ndarray:
    """The places (T, 3, 2) a frozen chain-of-places model greedily says on each observation, in
    image coordinates, so a reader with other place digits than the policy's labels it too."""
    said = [
        reader.embodiment.action.decode_places(reader.sample_actions(observations[i : i + chunk], greedy=True).tokens)
        for i in range(0, len(observations), chunk)
    ]
    return np.concatenate(said)


def consensus_loss(
    policy: EFM, observations: Sequence[Observation], labelled: np.ndarray, slots: Sequence[int] | None = None
) -> LossOutput:
    """Cross-entropy of the target place's digits (``slots``, by default all of them), teacher-forced
    on the object place said before it."""
    slots = list(slots) if slots is not None else labelled_slots(policy.embodiment.action)
    target = torch.as_tensor(np.asarray(labelled), dtype=torch.long, device=policy.device)
    dist = policy.chain_distributions(observations, target)
    nll = -dist[:, slots].gather(-1, target[:, slots, None])[..., 0]
    return LossOutput(nll.mean(), {"consensus/loss": nll.mean().item()})
