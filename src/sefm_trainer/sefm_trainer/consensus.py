"""Self-training in Stage 2: a chain-of-places policy labels its practice with its own consensus.

The block an instruction names as the target stays put while another is pushed to it. The policy
says anew at every step where that target is; on held-out demonstrations the place it says is
within a block width in 79% of steps, the median of what it said over the episode in 87%
(docs/results, session 13). So every practised frame gets the episode's median target place as
a label: supervision from practice, with no ground truth and no reward, the way self-training
turns a model's agreeing guesses into labels for its disagreeing ones. Measured on the 4-block
rung it does not generalise: 16 scenes a loop are learned by heart and the places got worse."""

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


def check_policy(policy: EFM) -> None:
    """A clear error where ``consensus_coef`` is set for a policy without a chain of places."""
    if not isinstance(policy.embodiment.action, GroundedActionTokenizer):
        raise ConfigError("consensus_coef > 0 labels a chain's target place, and the policy does not reason")


def target_slots(tokenizer: GroundedActionTokenizer) -> slice:
    """Where the target place's digits sit among a step's tokens."""
    per = len(tokenizer.place.slot_sizes)
    return slice(TARGET * per, (TARGET + 1) * per)


def consensus_tokens(tokens: np.ndarray, tokenizer: GroundedActionTokenizer) -> np.ndarray:
    """An episode's step tokens (T, slots) with each step's target place replaced by the median,
    over the episode, of the target places said."""
    tokens = np.asarray(tokens)
    median = np.median(tokenizer.decode_places(tokens)[:, TARGET], axis=0)
    labelled = tokens.copy()
    labelled[:, target_slots(tokenizer)] = tokenizer.place.encode(median)
    return labelled


def consensus_loss(policy: EFM, observations: Sequence[Observation], labelled: np.ndarray) -> LossOutput:
    """Cross-entropy of the target place's digits, teacher-forced on the object place said before it."""
    slots = target_slots(policy.embodiment.action)
    target = torch.as_tensor(np.asarray(labelled), dtype=torch.long, device=policy.device)
    dist = policy.chain_distributions(observations, target)
    nll = -dist[:, slots].gather(-1, target[:, slots, None])[..., 0]
    return LossOutput(nll.mean(), {"consensus/loss": nll.mean().item()})
