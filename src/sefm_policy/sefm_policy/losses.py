"""Training objectives: behaviour cloning, steps-to-go, instruction prediction, REINFORCE."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .model import EFM
from .prompts import Observation
from .tokenizers import NeighbourTeaching


@dataclass
class LossOutput:
    loss: torch.Tensor
    metrics: dict[str, float]


def bc_loss(model: EFM, observations: Sequence[Observation], action_tokens, action_weight: float = 1.0) -> LossOutput:
    """Cross-entropy over the action tokens (RT-2 style), a weighted mean over tokens.

    ``action_weight`` weighs the action's own slots against a reasoning chain's place slots: with
    12 place tokens before 4 action tokens, the map from places to action gets a quarter of the
    gradient at weight 1, and a decoder of the EFM's size learns that map alone only from a few
    hundred thousand examples (benchmarks/decoder_probe.py)."""
    target = torch.as_tensor(np.asarray(action_tokens), dtype=torch.long, device=model.device)
    dist = model.action_distributions(observations, target)
    nll = -dist.gather(-1, target[..., None])[..., 0]
    hit = dist.argmax(-1) == target
    acting = model.embodiment.reasoning_slots
    weights = torch.ones(nll.shape[-1], device=nll.device)
    weights[acting:] = action_weight
    loss = (nll * weights).sum(-1).mean() / weights.sum()
    return LossOutput(
        loss,
        {
            "bc/loss": nll.mean().item(),
            "bc/token_acc": hit.float().mean().item(),
            "bc/exact": hit.all(-1).float().mean().item(),
            "bc/action_exact": hit[..., acting:].all(-1).float().mean().item(),
        },
    )


def plan_loss(model: EFM, observations: Sequence[Observation], action_tokens) -> LossOutput:
    """Cross-entropy of the action's own tokens given the true places, without the images
    (``EFM.action_from_places_distributions``): the decoder probe's training inside the VLM."""
    target = torch.as_tensor(np.asarray(action_tokens), dtype=torch.long, device=model.device)
    acting = target[:, model.embodiment.reasoning_slots :]
    dist = model.action_from_places_distributions(observations, target)
    nll = -dist.gather(-1, acting[..., None])[..., 0]
    hit = dist.argmax(-1) == acting
    metrics = {"plan/loss": nll.mean().item(), "plan/action_exact": hit.all(-1).float().mean().item()}
    return LossOutput(nll.mean(), metrics)


def images_rolled(observations: Sequence[Observation]) -> list[Observation]:
    """Each observation with the next one's images (same instruction and state): BC loss on these
    minus the true loss says how much the policy looks; about zero means it acts from text alone."""
    n = len(observations)
    return [replace(o, images=observations[(i + 1) % n].images) for i, o in enumerate(observations)]


def chain_loss(model: EFM, observations: Sequence[Observation], tokens) -> LossOutput:
    """Cross-entropy over a reasoning chain's place tokens alone (no action): pointing to the blocks an
    instruction names, which Stage 1 can ask of every block of every frame, not only the two the
    demonstration's instruction names. ``tokens``: the digits, or a ``NeighbourTeaching`` that feeds
    some coarse digits one cell off."""
    chain = model.embodiment.reasoning_slots
    said, fed = tokens if isinstance(tokens, NeighbourTeaching) else (tokens, tokens)
    target = torch.as_tensor(np.asarray(said), dtype=torch.long, device=model.device)[:, :chain]
    dist = model.chain_distributions(observations, np.asarray(fed)[:, :chain])
    nll = -dist.gather(-1, target[..., None])[..., 0]
    hit = dist.argmax(-1) == target
    per_place = len(model.config.place_radices) * 2
    return LossOutput(
        nll.mean(),
        {
            "chain/loss": nll.mean().item(),
            "chain/token_acc": hit.float().mean().item(),
            "chain/object_exact": hit[:, :per_place].all(-1).float().mean().item(),
            "chain/target_exact": hit[:, per_place : 2 * per_place].all(-1).float().mean().item(),
        },
    )


def steps_to_go_loss(model: EFM, observations: Sequence[Observation], steps_to_go, places=None) -> LossOutput:
    """Cross-entropy of the binned steps-to-go target (T - t); ``places``: the chain's true places,
    which a ``steps_from: places`` model is told (else it says its own)."""
    target = torch.as_tensor(model.embodiment.steps.encode(steps_to_go, "steps-to-go"), device=model.device)
    logp = model.steps_to_go_log_probs(observations, places)
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


# The eos target's weight in text answers. At full weight the trivially predictable eos is learned
# first and the tiny model then sits on the answers' marginal for good: a single object's side
# (two loc bins, batch 32, lr 1e-3) stayed at chance for 400 steps at weight 1 and was learned by
# step 200 at weight 0.1 or 0 (docs/results, Stage 0). Greedy decoding still stops at eos.
EOS_WEIGHT = 0.1


def instruction_loss(
    model: EFM, observations: Sequence[Observation], instructions: Sequence[str], eos_weight: float = EOS_WEIGHT
) -> LossOutput:
    """Cross-entropy of the instruction given the episode's first and last frame."""
    logp, ids, mask = model.instruction_log_probs(observations, instructions)
    token_nll = _token_nll(logp, ids, mask)
    nll = _weighted_mean(token_nll, _eos_weights(model, ids, mask, eos_weight))
    return LossOutput(
        nll, {"instr/loss": _mean(token_nll, mask).item(), "instr/exact": _exact(logp, ids, mask).float().mean().item()}
    )


def answer_loss(
    model: EFM,
    observations: Sequence[Observation],
    prompts: Sequence[str],
    answers: Sequence[str],
    loc_sigma: float = 0.0,
    eos_weight: float = EOS_WEIGHT,
) -> LossOutput:
    """Cross-entropy of Stage 0's grounding answers (words and loc tokens). ``loc_sigma`` > 0 spreads
    each loc target over its neighbouring bins (a Gaussian of that many bins, as HL-Gauss does for
    regression by classification): a one-hot loc says nothing about near misses, so a model that
    points one bin off learns as little as one that points at the far corner."""
    logp, ids, mask = model.answer_log_probs(observations, prompts, answers)
    token_nll = _token_nll(logp, ids, mask)
    metrics = {
        "answer/loss": _mean(token_nll, mask).item(),
        "answer/exact": _exact(logp, ids, mask).float().mean().item(),
    }
    if loc_sigma > 0:
        token_nll = _soft_loc_nll(model, logp, ids, mask, loc_sigma)
    return LossOutput(_weighted_mean(token_nll, _eos_weights(model, ids, mask, eos_weight)), metrics)


def _soft_loc_nll(model: EFM, logp, ids, mask, sigma: float) -> torch.Tensor:
    """Per-token NLL (B, L) with every loc target replaced by a Gaussian over the loc bins around it."""
    locs = model.loc_ids
    bin_of = torch.full((logp.shape[-1],), -1, dtype=torch.long, device=logp.device)
    bin_of[locs] = torch.arange(len(locs), device=logp.device)
    target_bin = bin_of[ids]  # (B, L): -1 where the target is not a loc
    is_loc = (target_bin >= 0) & mask
    offsets = torch.arange(-int(3 * sigma) - 1, int(3 * sigma) + 2, device=logp.device)
    near = (target_bin[..., None] + offsets).clamp(0, len(locs) - 1)  # (B, L, K) bins around the target
    weights = torch.exp(-0.5 * (offsets.float() / sigma) ** 2)
    weights = weights / weights.sum()
    soft = -(logp.gather(-1, locs[near]) * weights).sum(-1)
    return torch.where(is_loc, soft, _token_nll(logp, ids, mask))


def _token_nll(logp: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-log p of each target (B, L), 0 at padding."""
    # Padding targets sit outside the constrained vocabulary (log p = -inf): select, don't multiply.
    return torch.where(mask, -logp.gather(-1, ids[..., None])[..., 0], 0.0)


def _eos_weights(model: EFM, ids: torch.Tensor, mask: torch.Tensor, eos_weight: float) -> torch.Tensor:
    return torch.where(ids == model.layout.eos, eos_weight, 1.0) * mask


def _weighted_mean(token_nll: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (token_nll * weights).sum() / weights.sum()


def _mean(token_nll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return token_nll.sum() / mask.sum()


def _exact(logp: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Whether each row's greedy tokens all match its targets."""
    return ((logp.argmax(-1) == ids) | ~mask).all(-1)


def reinforce_loss(
    model: EFM,
    observations: Sequence[Observation],
    action_tokens,
    returns,
    coef: float = 5e-2,
    chain: bool = False,
    reference: EFM | None = None,
    kl_coef: float = 0.0,
    sampled_log_prob=None,
    clip: float = 0.0,
) -> LossOutput:
    """-c * R_t * log p(a_t | o_t, g), log p summed over the step's tokens (a reasoning chain's
    places too with ``chain``: practice sampled them), mean over the batch. With a ``reference``
    policy, plus kl_coef * KL(policy || reference) summed over every slot of the step, as RLHF
    anchors a policy to its supervised start: it holds what REINFORCE does not weigh (the greedy
    places, the argmax greedy evaluation acts on) where Stage 1 put it.

    ``sampled_log_prob``: log p under the policy that practised, so how far the loop's updates have
    moved the policy is logged (``rl/approx_kl``). ``clip`` > 0 (needs it): PPO's clipped
    surrogate -c * min(rho * R, clip(rho, 1 - clip, 1 + clip) * R), rho = p / p_sampled. Its gradient is
    REINFORCE's while the policy is still the one that practised, and stops once an earlier update
    of the loop has moved a step's probability past the clip in the way its return pushes. Plain
    REINFORCE bounds nothing: in session 20's 8-block loop (lr 1e-4) the mean log p of the steps
    being weighed fell from -3 to -20 by the fourth loop."""
    dist = model.action_distributions(observations, action_tokens)
    log_prob = model.log_prob_in(dist, action_tokens, chain=chain)
    r = torch.as_tensor(np.asarray(returns), dtype=torch.float32, device=model.device)
    if r.shape != log_prob.shape:
        raise ValueError(f"returns shape {tuple(r.shape)} does not match the batch {tuple(log_prob.shape)}")
    metrics = {"rl/log_prob": log_prob.mean().item(), "rl/return": r.mean().item()}
    if clip > 0 and sampled_log_prob is None:
        raise ValueError("clip > 0 needs sampled_log_prob, log p under the policy that practised")
    surrogate = r * log_prob
    if sampled_log_prob is not None:
        log_ratio = log_prob - torch.as_tensor(sampled_log_prob, dtype=torch.float32, device=model.device)
        ratio = log_ratio.exp()
        metrics["rl/approx_kl"] = ((ratio - 1) - log_ratio).mean().item()  # k3 estimator, as CleanRL logs it
        if clip > 0:
            surrogate = torch.min(ratio * r, ratio.clamp(1 - clip, 1 + clip) * r)
            metrics["rl/clip_frac"] = ((ratio - 1).abs() > clip).float().mean().item()
    loss = -(coef * surrogate).mean()
    if reference is not None and kl_coef > 0:
        with torch.no_grad():
            ref = reference.action_distributions(observations, action_tokens)
        valid = torch.isfinite(dist)  # bins past a slot's size are -inf in both: no term, no NaN gradient
        p, q = dist.masked_fill(~valid, 0.0), ref.masked_fill(~valid, 0.0)
        kl = (valid * p.exp() * (p - q)).sum((-1, -2)).mean()
        loss = loss + kl_coef * kl
        metrics["rl/kl"] = kl.item()
    return LossOutput(loss, {"rl/loss": loss.item(), **metrics})
