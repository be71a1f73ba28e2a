"""Training objectives: behaviour cloning, steps-to-go, instruction prediction, REINFORCE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .model import EFM
from .prompts import Observation


@dataclass
class LossOutput:
    loss: torch.Tensor
    metrics: dict[str, float]


def bc_loss(model: EFM, observations: Sequence[Observation], action_tokens) -> LossOutput:
    """Cross-entropy over the action tokens (RT-2 style), mean over tokens."""
    target = torch.as_tensor(np.asarray(action_tokens), dtype=torch.long, device=model.device)
    dist = model.action_distributions(observations, target)
    nll = -dist.gather(-1, target[..., None])[..., 0]
    hit = dist.argmax(-1) == target
    return LossOutput(
        nll.mean(),
        {
            "bc/loss": nll.mean().item(),
            "bc/token_acc": hit.float().mean().item(),
            "bc/exact": hit.all(-1).float().mean().item(),
        },
    )


def images_rolled(observations: Sequence[Observation]) -> list[Observation]:
    """Each observation with the next one's images (same instruction and state): BC loss on these
    minus the true loss says how much the policy looks; about zero means it acts from text alone."""
    n = len(observations)
    return [replace(o, images=observations[(i + 1) % n].images) for i, o in enumerate(observations)]


def steps_to_go_loss(model: EFM, observations: Sequence[Observation], steps_to_go) -> LossOutput:
    """Cross-entropy of the binned steps-to-go target (T - t)."""
    target = torch.as_tensor(model.embodiment.steps.encode(steps_to_go, "steps-to-go"), device=model.device)
    logp = model.steps_to_go_log_probs(observations)
    nll = -logp.gather(-1, target[:, None])[:, 0]
    d = logp.exp() @ model.steps_centres
    err = (d - torch.as_tensor(np.asarray(steps_to_go), dtype=torch.float32, device=model.device)).abs()
    return LossOutput(
        nll.mean(),
        {
            "steps/loss": nll.mean().item(),
            "steps/acc": (logp.argmax(-1) == target).float().mean().item(),
            "steps/abs_err": err.mean().item(),
        },
    )


def instruction_loss(model: EFM, observations: Sequence[Observation], instructions: Sequence[str]) -> LossOutput:
    """Cross-entropy of the instruction given the episode's first and last frame."""
    logp, ids, mask = model.instruction_log_probs(observations, instructions)
    # Padding targets sit outside the constrained vocabulary (log p = -inf): select, don't multiply.
    nll = torch.where(mask, -logp.gather(-1, ids[..., None])[..., 0], 0.0)
    nll = nll.sum() / mask.sum()
    hit = (logp.argmax(-1) == ids) | ~mask
    return LossOutput(nll, {"instr/loss": nll.item(), "instr/exact": hit.all(-1).float().mean().item()})


def reinforce_loss(
    model: EFM, observations: Sequence[Observation], action_tokens, returns, coef: float = 5e-2
) -> LossOutput:
    """-c * R_t * log p(a_t | o_t, g), log p summed over the step's tokens, mean over the batch."""
    log_prob = model.action_log_prob(observations, action_tokens)
    r = torch.as_tensor(np.asarray(returns), dtype=torch.float32, device=model.device)
    if r.shape != log_prob.shape:
        raise ValueError(f"returns shape {tuple(r.shape)} does not match the batch {tuple(log_prob.shape)}")
    loss = -(coef * r * log_prob).mean()
    return LossOutput(
        loss, {"rl/loss": loss.item(), "rl/log_prob": log_prob.mean().item(), "rl/return": r.mean().item()}
    )
