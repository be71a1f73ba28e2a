"""The embodied foundation model: one PaliGemma, three prompts (act, steps-to-go, instruction).

Sequences are ``[pad…][image tokens][bos][prompt][state tokens][sep] | suffix``: left padding
puts every row's suffix at the same position, the prefix attends bidirectionally and the
suffix causally (PaliGemma's prefix-LM). A reasoning policy with ``action_from: places`` says
its chain of places over the images, then its action in a second pass over the same prompt
without the images: the action cannot copy the motion it sees between the two frames, only
follow from the places. Every output slot is restricted to its valid
tokens, for training, log-probs and sampling alike, so the distribution REINFORCE
differentiates is the one the robot samples from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from .backbone import build_backbone
from .config import EFMConfig
from .embodiment import embodiment_for
from .object_centres import install_object_centres, snap
from .patch_positions import set_patch_positions
from .place_pointer import install_place_pointer
from .prompts import MAX_PROMPT_TOKENS, Observation, Task, prompt_text
from .tokenizers import slot_token_ids
from .vocab import TokenLayout

MAX_INSTRUCTION_TOKENS = 24
TEXT_CACHE_SIZE = 1 << 16  # prompts and answers whose token ids are kept
LOC_PATTERN = re.compile(r"<loc(\d{4})>")
# Background-normalised pixels: the scene's residual over 127.5 / BACKGROUND_GAIN, so an object
# on the board spans about ±2 while the unchanged board is 0.
BACKGROUND_GAIN = 2.0


@dataclass
class Prefix:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    pixel_values: torch.Tensor | None  # None: a text-only prefix

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]


def _shifted(pixels: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images (..., H, W) moved ``dy`` rows down and ``dx`` columns right; what comes in is zero
    (the fitted background, after background normalisation) and what goes out is lost."""
    out = torch.zeros_like(pixels)
    h, w = pixels.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = pixels[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


@dataclass
class ActionSample:
    tokens: np.ndarray  # (B, slots) slot-local bin indices
    actions: np.ndarray  # decoded actions (LanguageTable: (B, 2); ALOHA: (B, chunk, 14))
    log_prob: torch.Tensor  # (B,) log p(tokens | obs) under the untempered policy


class EFM(nn.Module):
    def __init__(self, config: EFMConfig, backbone, tokenizer) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        set_patch_positions(backbone, config.patch_positions)
        install_place_pointer(backbone, config)
        install_object_centres(backbone, config.snap_places, config.seed)
        self.tokenizer = tokenizer
        self.layout = TokenLayout.from_tokenizer(tokenizer)
        self._text_ids: dict[str, tuple[int, ...]] = {}
        self.embodiment = embodiment_for(config)
        self.image_size = int(backbone.config.vision_config.image_size)
        self.tokens_per_image = int(backbone.config.text_config.num_image_tokens)
        self.register_buffer("loc_ids", self.layout.loc.clone(), persistent=False)
        self.register_buffer("text_mask", self.layout.text_mask(), persistent=False)
        self.register_buffer("answer_mask", self.layout.answer_mask(), persistent=False)
        self.register_buffer(
            "background",
            torch.full((self.embodiment.num_model_images, 3, self.image_size, self.image_size), 127.5),
            persistent=False,  # saved beside the weights (checkpoint.BACKGROUND)
        )
        self.register_buffer(
            "steps_centres", torch.tensor(self.embodiment.steps.centres, dtype=torch.float32), persistent=False
        )
        self.action_slot_sizes = torch.tensor(self.embodiment.action.slot_sizes)
        per_slot = config.slot_tokens == "per_slot"
        self.register_buffer(
            "action_ids", slot_token_ids(self.embodiment.action.slot_sizes, self.loc_ids, per_slot), persistent=False
        )
        self.register_buffer("steps_ids", slot_token_ids([self.embodiment.steps.bins], self.loc_ids), persistent=False)

    @classmethod
    def build(cls, config: EFMConfig) -> EFM:
        backbone, tokenizer = build_backbone(config)
        return cls(config, backbone, tokenizer)

    def reconfigured(self, **changes) -> EFM:
        """The same weights and background under a changed config (e.g. ``reason`` switched on for
        Stage 1 on a base pretrained without it)."""
        config = type(self.config).model_validate({**self.config.model_dump(), **changes})
        model = EFM(config, self.backbone, self.tokenizer)
        model.background.copy_(self.background)
        return model.to(self.device)

    @property
    def pointer(self):
        """The chain's place pointer (``place_pointer``), or None."""
        return getattr(self.backbone, "place_pointer", None)

    @property
    def object_centres(self):
        """The centre finder the chain's places snap to (``snap_places``), or None."""
        return getattr(self.backbone, "object_centres", None)

    @property
    def device(self) -> torch.device:
        return self.loc_ids.device

    def freeze_vision_tower(self) -> None:
        """Stage 2 trains everything but the vision encoder (paper App. A.3)."""
        for p in self.backbone.model.vision_tower.parameters():
            p.requires_grad_(False)

    # ----- inputs -------------------------------------------------------------------------

    def _raw_pixels(self, obs: Observation) -> torch.Tensor:
        """The observation's model images as (images, 3, S, S) uint8: batches travel to the device
        as bytes, a quarter of their float size."""
        s, images = self.image_size, []
        for image in self.embodiment.model_images(obs):
            if image.shape[:2] != (s, s):
                image = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA)
            images.append(torch.from_numpy(image).permute(2, 0, 1))
        return torch.stack(images)

    def _normalise(self, raw: torch.Tensor) -> torch.Tensor:
        if self.config.pixel_normalization == "background":
            return (raw.float() - self.background).div_(127.5 / BACKGROUND_GAIN)
        return raw.float().div_(127.5).sub_(1.0)

    @torch.no_grad()
    def fit_background(self, observations: Sequence[Observation]) -> None:
        """Set the per-pixel mean of the model images over ``observations`` (training frames):
        what "background" normalisation subtracts. A random-init tower fed the raw board learns to
        ignore the few pixels that differ between frames, and the policy goes blind."""
        if not observations:
            raise ValueError("need at least one observation to fit the background")
        total = torch.zeros_like(self.background, device="cpu", dtype=torch.float64)
        for obs in observations:
            total += self._raw_pixels(obs)
        self.background.copy_((total / len(observations)).float())

    def encode_text(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text``, where ``<locNNNN>`` stands for that loc token (PaliGemma's notation);
        cached, since training batches repeat a few thousand prompts."""
        ids = self._text_ids.get(text)
        if ids is None:
            ids = []
            for i, piece in enumerate(LOC_PATTERN.split(text)):
                if i % 2:
                    ids.append(int(self.layout.loc[int(piece)]))
                elif piece.strip():
                    ids += self.tokenizer.encode(piece, add_special_tokens=False)
            if len(self._text_ids) >= TEXT_CACHE_SIZE:
                self._text_ids.clear()
            ids = self._text_ids[text] = tuple(ids)
        return ids

    def prefix(
        self,
        task: Task,
        observations: Sequence[Observation],
        prompts: Sequence[str] | None = None,
        images: bool = True,
    ) -> Prefix:
        """``prompts`` replaces the task's prompt per row (Stage 0's grounding questions); without
        ``images`` the prefix is the prompt alone."""
        if not observations:
            raise ValueError("need at least one observation")
        if prompts is not None and len(prompts) != len(observations):
            raise ValueError(f"{len(prompts)} prompts for {len(observations)} observations")
        lay, emb = self.layout, self.embodiment
        pixels, rows = [], []
        image_ids = [lay.image] * (self.tokens_per_image * emb.num_model_images) if images else []
        for i, obs in enumerate(observations):
            if images:
                pixels.append(self._raw_pixels(obs))
            text = self.encode_text(prompt_text(task, obs.instruction) if prompts is None else prompts[i])
            ids = [*image_ids, lay.bos, *text[:MAX_PROMPT_TOKENS]]
            if emb.state is not None and task in (Task.ACT, Task.STEPS):
                if obs.state is None:
                    raise ValueError(f"{emb.name} observations need the joint state for the prompt")
                ids += self.layout.loc[torch.from_numpy(emb.state.encode(obs.state))].tolist()
            rows.append([*ids, lay.sep])
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), lay.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        position_ids = (mask.cumsum(-1)).clamp(min=1)  # PaliGemma positions start at 1
        dev = self.device
        values = self._normalise(torch.stack(pixels).to(dev)).flatten(0, 1) if images else None
        return Prefix(input_ids.to(dev), mask.to(dev), position_ids.to(dev), values)

    # ----- forward passes -------------------------------------------------------------

    def image_features(self, observations: Sequence[Observation]) -> torch.Tensor:
        """The vision tower's patch features of each observation's model images, before the
        projection into the decoder: (B, images, patches, vision hidden)."""
        pixels = torch.stack([self._raw_pixels(obs) for obs in observations]).to(self.device)
        out = self.backbone.model.vision_tower(pixel_values=self._normalise(pixels).flatten(0, 1))
        features = out.last_hidden_state
        return features.view(len(observations), -1, *features.shape[1:])

    @staticmethod
    def _joined(prefix: Prefix, suffix: torch.Tensor | None, suffix_mask=None) -> tuple[torch.Tensor, ...]:
        """(ids, attention mask, positions, token types) of the prefix followed by answer tokens
        ``suffix`` (B, L), which attend causally (token type 1)."""
        ids, mask, pos = prefix.input_ids, prefix.attention_mask, prefix.position_ids
        types = torch.zeros_like(ids)
        if suffix is not None and suffix.shape[1] > 0:
            n = suffix.shape[1]
            smask = torch.ones_like(suffix) if suffix_mask is None else suffix_mask.long()
            ids = torch.cat([ids, suffix], 1)
            mask = torch.cat([mask, smask], 1)
            pos = torch.cat([pos, pos[:, -1:] + torch.arange(1, n + 1, device=ids.device)], 1)
            types = torch.cat([types, torch.ones_like(suffix)], 1)
        return ids, mask, pos, types

    def _teacher_forced_logits(self, prefix: Prefix, suffix: torch.Tensor | None, suffix_mask=None, states=False):
        """Logits predicting suffix tokens 0..L (B, L+1, V), given the prefix and ``suffix`` (B, L);
        with ``states``, also the last layer's states of the whole sequence."""
        ids, mask, pos, types = self._joined(prefix, suffix, suffix_mask)
        n = ids.shape[1] - prefix.input_ids.shape[1]
        out = self.backbone(
            input_ids=ids,
            pixel_values=prefix.pixel_values,
            attention_mask=mask,
            position_ids=pos,
            token_type_ids=types,
            use_cache=False,
            logits_to_keep=n + 1,
            output_hidden_states=states,
        )
        return (out.logits, out.hidden_states[-1]) if states else out.logits

    def _seen_logits(self, observations: Sequence[Observation], bins: torch.Tensor) -> torch.Tensor:
        """Logits of the chain's slots 0..n (B, n+1, V) from the pass over the images, teacher-forced on
        the chain's bins (B, n); with a pointer, its scores added to each coarse digit's."""
        prefix = self.prefix(Task.ACT, observations)
        suffix = self._action_vocab(bins)
        if self.pointer is None:
            return self._teacher_forced_logits(prefix, suffix)
        logits, states = self._teacher_forced_logits(prefix, suffix, states=True)
        read = self._pointer_keys(prefix, states)
        n = logits.shape[1]
        slots = [self._pointed(k, logits[:, k], states[:, states.shape[1] - n + k], read, bins) for k in range(n)]
        return torch.stack(slots, 1)

    def _pointer_inputs(self, prefix: Prefix, states: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """What the pointer reads in a prefix, from the last layer's ``states``: the current frame's
        image tokens (each row's first image), and the prompt's end with the mask of its words."""
        ids = prefix.input_ids
        states = states[:, : ids.shape[1]]
        image = ids == self.layout.image
        tokens = states[image].view(prefix.batch_size, -1, states.shape[-1])[:, : self.tokens_per_image]
        words = (~image) & (prefix.attention_mask > 0) & (ids != self.layout.bos) & (ids != self.layout.sep)
        end = MAX_PROMPT_TOKENS + 2  # the prompt, bos and sep: left padding puts them last
        return tokens, (states[:, -end:], words[:, -end:])

    def _pointer_keys(self, prefix: Prefix, states: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        tokens, words = self._pointer_inputs(prefix, states)
        return self.pointer.keys(tokens), words

    @torch.no_grad()
    def pointer_inputs(self, observations: Sequence[Observation], tokens) -> tuple[torch.Tensor, ...]:
        """What a place pointer reads for chains teacher-forced on ``tokens`` (B, >= chain slots):
        image-token states (B, patches, hidden), the prompt's states and word mask, and the states
        saying each place's coarse row and column (B, 2 * places, hidden), in
        ``coarse_place_slots`` order. A fresh pointer fits on these without a pass through the
        model a step (``sefm_trainer.pointer_fit``)."""
        chain = self.embodiment.reasoning_slots
        if not chain:
            raise ValueError("a place pointer reads a chain of places, which needs reason: true")
        bins = self._token_tensor(tokens)[:, : chain - 1]
        prefix = self.prefix(Task.ACT, observations)
        _, states = self._teacher_forced_logits(prefix, self._action_vocab(bins), states=True)
        images, (prompt, words) = self._pointer_inputs(prefix, states)
        slots = torch.tensor(self.embodiment.action.coarse_place_slots, device=self.device)
        return images, prompt, words, states[:, states.shape[1] - chain :][:, slots]

    def _pointed(self, k: int, logits: torch.Tensor, state: torch.Tensor, read, bins) -> torch.Tensor:
        """Slot ``k``'s logits (B, V), plus the pointer's scores if it is a place's coarse row or
        column; ``read``: ``_pointer_keys``' answer; ``bins`` (B, >= k): the slots said before it."""
        per = len(self.embodiment.action.place.slot_sizes)
        if k >= self._chain_slots or k % per > 1:
            return logits
        rows = bins[:, k - 1] if k % per == 1 else None
        keys, words = read
        scores = self.pointer.logits(state, keys, words, rows)
        return logits.index_add(-1, self.action_ids[k, : self.pointer.grid], scores)

    def _restrict(self, logits: torch.Tensor, sizes: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Log-softmax over each slot's valid tokens: (B, L, V) -> (B, L, max size), slot l's
        bins being vocabulary ids ``ids[l]``."""
        width = int(sizes.max())
        ids = ids[:, :width]
        sub = logits.gather(-1, ids.expand(logits.shape[0], *ids.shape))
        invalid = torch.arange(width, device=logits.device) >= sizes.to(logits.device)[:, None]
        return sub.masked_fill(invalid, float("-inf")).log_softmax(-1)

    def _token_tensor(self, tokens) -> torch.Tensor:
        """Slot bins (an array, nested lists or a tensor on any device) as a long tensor here."""
        if isinstance(tokens, torch.Tensor):
            return tokens.to(self.device, torch.long)
        return torch.as_tensor(np.asarray(tokens), dtype=torch.long, device=self.device)

    def _action_vocab(self, bins: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Vocabulary ids of action bins (B, n) that fill slots ``first``.. ``first + n - 1``."""
        slots = torch.arange(first, first + bins.shape[1], device=bins.device)
        return self.action_ids[slots, bins]

    @property
    def _chain_slots(self) -> int:
        """Slots said over the images before a second, image-free pass says the rest (0: one pass)."""
        return self.embodiment.reasoning_slots if self.config.action_from == "places" else 0

    def action_distributions(self, observations: Sequence[Observation], tokens) -> torch.Tensor:
        """Per-slot log-probs (B, slots, max slot size) of the action, teacher-forced on ``tokens``."""
        tokens = self._token_tensor(tokens)
        suffix = self._action_vocab(tokens[:, :-1])
        chain = self._chain_slots
        if not chain:
            logits = self._teacher_forced_logits(self.prefix(Task.ACT, observations), suffix)
        else:
            seen = self._seen_logits(observations, tokens[:, : chain - 1])
            logits = torch.cat([seen, self._blind_logits(observations, suffix)], 1)
        return self._restrict(logits, self.action_slot_sizes, self.action_ids)

    def chain_distributions(self, observations: Sequence[Observation], tokens) -> torch.Tensor:
        """Log-probs (B, chain slots, max size) of a reasoning chain's places alone, teacher-forced on
        ``tokens`` (its place slots, or the whole action): the pass over the images, no action."""
        chain = self.embodiment.reasoning_slots
        if not chain:
            raise ValueError("a chain of places needs reason: true")
        logits = self._seen_logits(observations, self._token_tensor(tokens)[:, : chain - 1])
        return self._restrict(logits, self.action_slot_sizes[:chain], self.action_ids[:chain])

    def _blind_logits(self, observations: Sequence[Observation], suffix: torch.Tensor) -> torch.Tensor:
        """The image-free pass's logits for the action's own slots, after the chain in ``suffix``."""
        prefix = self.prefix(Task.ACT, observations, images=False)
        return self._teacher_forced_logits(prefix, suffix)[:, self._chain_slots :]

    def action_from_places_distributions(self, observations: Sequence[Observation], tokens) -> torch.Tensor:
        """Log-probs (B, action slots, max size) of the action's own slots given the chain's places in
        ``tokens``, from the image-free pass alone (``action_from: places``): the place -> action map,
        which needs no pixels and so trains on many examples cheaply."""
        chain = self._chain_slots
        if not chain:
            raise ValueError("the action follows from places only with reason and action_from: places")
        tokens = self._token_tensor(tokens)
        logits = self._blind_logits(observations, self._action_vocab(tokens[:, :-1]))
        return self._restrict(logits, self.action_slot_sizes[chain:], self.action_ids[chain:])

    def action_log_prob(self, observations: Sequence[Observation], tokens, chain: bool = False) -> torch.Tensor:
        """log p(a | o, g) summed over the step's action tokens (B,): what REINFORCE weighs. A
        reasoning chain's places count only with ``chain`` (practice that sampled their coarse
        digits, ``sample_actions(chain_temperature > 0)``); said greedily, they are not a choice."""
        return self.log_prob_in(self.action_distributions(observations, tokens), tokens, chain)

    def log_prob_in(self, distributions: torch.Tensor, tokens, chain: bool = False) -> torch.Tensor:
        """``action_log_prob`` read off per-slot ``action_distributions`` already computed."""
        idx = self._token_tensor(tokens)
        explored = self.embodiment.explored_slots(chain, self.config.practice_digits)
        explored = torch.as_tensor(explored, device=self.device)
        return distributions.gather(-1, idx[..., None])[..., 0][:, explored].sum(-1)

    def steps_to_go_log_probs(self, observations: Sequence[Observation], places=None) -> torch.Tensor:
        """log p(k | o, g) over the steps-to-go bins (B, K): one forward pass over the frames, or with
        ``steps_from: places`` one without them, told the chain's places: ``places`` (B, >= chain
        slots) where given (training's true ones), else the ones greedy act says."""
        if self.config.steps_from == "images":
            logits = self._teacher_forced_logits(self.prefix(Task.STEPS, observations), None)
        else:
            said = self.said_places(observations) if places is None else places
            told = self._action_vocab(self._token_tensor(said)[:, : self._chain_slots])
            logits = self._teacher_forced_logits(self.prefix(Task.STEPS, observations, images=False), told)
        return self._restrict(logits[:, -1:], torch.tensor([self.embodiment.steps.bins]), self.steps_ids)[:, 0]

    def steps_to_go_distribution(self, observations: Sequence[Observation]) -> torch.Tensor:
        return self.steps_to_go_log_probs(observations).exp()

    def expected_steps_to_go(self, observations: Sequence[Observation]) -> torch.Tensor:
        """d(o, g) = sum_k p(k | o, g) * centre(k): no sampling (paper eq. 1)."""
        return self.steps_to_go_distribution(observations) @ self.steps_centres

    def instruction_log_probs(self, observations: Sequence[Observation], instructions: Sequence[str]):
        """Teacher-forced log-probs over text tokens for the instruction (+eos), the target ids
        and their mask; observations carry the first and last frame."""
        targets = [self.tokenizer.encode(s, add_special_tokens=False) for s in instructions]
        return self._answer_log_probs(self.prefix(Task.INSTRUCTION, observations), targets, self.text_mask)

    def answer_log_probs(self, observations: Sequence[Observation], prompts: Sequence[str], answers: Sequence[str]):
        """Teacher-forced log-probs of free answers (words and ``<locNNNN>``, + eos) to free prompts:
        Stage 0's grounding questions, over the whole vocabulary as PaliGemma answers."""
        targets = [self.encode_text(a) for a in answers]
        return self._answer_log_probs(self.prefix(Task.ANSWER, observations, prompts), targets, self.answer_mask)

    def _answer_log_probs(self, prefix: Prefix, targets: list[list[int]], allowed: torch.Tensor):
        targets = [[*t[:MAX_INSTRUCTION_TOKENS], self.layout.eos] for t in targets]
        width = max(len(t) for t in targets)
        ids = torch.full((len(targets), width), self.layout.pad, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for i, t in enumerate(targets):
            ids[i, : len(t)] = torch.tensor(t)
            mask[i, : len(t)] = True
        logits = self._teacher_forced_logits(prefix, ids[:, :-1], mask[:, :-1])
        logp = logits.masked_fill(~allowed, float("-inf")).log_softmax(-1)
        return logp, ids, mask

    # ----- decoding --------------------------------------------------------------------

    def _decode_steps(self, prefix: Prefix, steps: int, choose, done=None, suffix=None, point=False):
        """Autoregressive decoding with a KV cache; ``choose(k, logits) -> vocab ids`` picks slot k;
        stops early once ``done(chosen)`` says every row has finished. ``suffix`` (B, n): answer
        tokens already said, read in the first pass; slot 0 is then the one after them. ``point``:
        a chain's places over the images, with the pointer's scores in their coarse digits."""
        ids, mask, pos, types = self._joined(prefix, suffix)
        out = self.backbone(
            input_ids=ids,
            pixel_values=prefix.pixel_values,
            attention_mask=mask,
            position_ids=pos,
            token_type_ids=types,
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=point,
        )
        read = self._pointer_keys(prefix, out.hidden_states[-1]) if point else None
        pos, cache = pos[:, -1:], out.past_key_values
        chosen = []
        bins = torch.zeros((prefix.batch_size, steps), dtype=torch.long, device=self.device) if point else None
        for k in range(steps):
            logits = out.logits[:, -1]
            if point:
                logits = self._pointed(k, logits, out.hidden_states[-1][:, -1], read, bins)
            ids = choose(k, logits)
            chosen.append(ids)
            if point:
                bins[:, k] = (self.action_ids[k] == ids[:, None]).int().argmax(-1)
            if k + 1 == steps or (done is not None and done(chosen)):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            pos = pos + 1
            out = self.backbone(
                input_ids=ids[:, None],
                attention_mask=mask,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                output_hidden_states=point,
            )
            cache = out.past_key_values
        return chosen

    @torch.no_grad()
    def sample_actions(
        self,
        observations: Sequence[Observation],
        temperature: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        given: np.ndarray | None = None,
        chain_temperature: float = 0.0,
    ) -> ActionSample:
        """Sample (or, greedy / temperature 0, take the argmax of) each action slot in turn.
        A reasoning chain's places are the argmax unless ``chain_temperature`` > 0: then practice
        samples each place's ``practice_digits`` too (a policy that acts well from true places fails
        where its places are wrong) and ``log_prob`` counts them (``Embodiment.explored_slots``);
        otherwise it is over the action slots alone. ``given`` (B, k): bins to take for the first
        k slots instead, -1 where the policy chooses (e.g. a reasoning chain told some true
        places, to see how the action follows from them). With ``place_reads: half_patch`` the
        places not given are said as ``half_patch_places`` reads them (and with ``snap_places`` moved onto
        the centres seen, as ``said_places`` says them), unless practice samples them:
        sampling the coarse digits reads once; sampling the fine ones keeps the five reads' patches."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if chain_temperature < 0:
            raise ValueError(f"chain_temperature must be >= 0, got {chain_temperature}")
        greedy = greedy or temperature == 0
        sizes = self.action_slot_sizes
        bins, log_prob = [], torch.zeros(len(observations), device=self.device)
        fixed = None if given is None else self._token_tensor(given)
        if fixed is not None and (fixed.shape[0] != len(observations) or fixed.shape[1] > len(sizes)):
            raise ValueError(
                f"given must be ({len(observations)}, <= {len(sizes)}) slot bins, got {tuple(fixed.shape)}"
            )
        chain = self._chain_slots
        sampled = not greedy and chain_temperature > 0
        fine = sampled and self.config.practice_digits == "fine"
        reread = self.config.place_reads == "half_patch" or self.config.snap_places
        read = reread and (not sampled or fine)
        if read:  # the places (or, sampling the fine digits, their patches) are told, the given ones as given
            told = torch.full((len(observations), len(sizes)), -1, dtype=torch.long, device=self.device)
            said = self._token_tensor(self.said_places(observations))
            slots = list(self.embodiment.action.coarse_place_slots) if fine else list(range(chain))
            told[:, slots] = said[:, slots]
            if fixed is not None:
                told[:, : fixed.shape[1]] = torch.where(fixed >= 0, fixed, told[:, : fixed.shape[1]])
            fixed = told

        explored = self.embodiment.explored_slots(chain_temperature > 0, self.config.practice_digits)

        def choose(k: int, logits: torch.Tensor) -> torch.Tensor:
            nonlocal log_prob
            lp = self._restrict(logits[:, None], sizes[k : k + 1], self.action_ids[k : k + 1])[:, 0]
            if greedy or not explored[k]:
                b = lp.argmax(-1)
            else:
                t = chain_temperature if k < self.embodiment.reasoning_slots else temperature
                b = torch.multinomial((lp / t).softmax(-1), 1, generator=generator)[:, 0]
            chosen = lp.gather(-1, b[:, None])[:, 0]
            if fixed is not None and k < fixed.shape[1]:
                told = fixed[:, k] >= 0
                b = torch.where(told, fixed[:, k], b)
                chosen = chosen.masked_fill(told, 0.0)
            if explored[k]:
                log_prob = log_prob + chosen
            bins.append(b)
            return self._action_vocab(b[:, None], k)[:, 0]

        if read and not fine:  # every place told: no image pass left to make
            bins += list(fixed[:, :chain].T)
        else:
            self._decode_steps(
                self.prefix(Task.ACT, observations), chain or len(sizes), choose, point=self.pointer is not None
            )
        if chain:
            said = self._action_vocab(torch.stack(bins, 1))
            blind = self.prefix(Task.ACT, observations, images=False)
            self._decode_steps(blind, len(sizes) - chain, lambda k, logits: choose(k + chain, logits), suffix=said)
        tokens = torch.stack(bins, 1).cpu().numpy()
        return ActionSample(tokens, self.embodiment.action.decode(tokens), log_prob)

    @torch.no_grad()
    def half_patch_places(self, observations: Sequence[Observation]) -> np.ndarray:
        """A reasoning chain's places (B, reasoning slots), each the median of five greedy reads: of
        the images as they are and shifted by half a patch left, right, up and down. A place near
        a patch's edge is read a patch off now and then, and a greedy policy in a deterministic
        scene then shuttles on the spot (docs/results, session 16); in a shifted copy the same
        place lies mid-patch. A shift loses a strip at one border, and what it loses the opposite
        shift keeps, so the median outvotes a read of something shifted out of view."""
        chain = self._chain_slots
        if not chain:
            raise ValueError("half_patch_places needs a chain of places said over the images (action_from: places)")
        tokenizer, half = self.embodiment.action, self.config.vision.patch_size // 2
        shifts = ((0, 0), (0, half), (0, -half), (half, 0), (-half, 0))
        one = self.prefix(Task.ACT, observations)
        prefix = Prefix(  # the five reads as one batch, read-major
            *(torch.cat([t] * len(shifts)) for t in (one.input_ids, one.attention_mask, one.position_ids)),
            torch.cat([_shifted(one.pixel_values, dy, dx) for dy, dx in shifts]),
        )
        said = tokenizer.decode_places(self._greedy_chain(prefix)).reshape(len(shifts), len(observations), -1, 2)
        reads = said - np.array([[dx, dy] for dy, dx in shifts])[:, None, None] / self.image_size
        places = np.median(reads, axis=0)
        return tokenizer.place.encode(places).reshape(len(observations), chain)

    @torch.no_grad()
    def said_places(self, observations: Sequence[Observation]) -> np.ndarray:
        """A reasoning chain's places (B, reasoning slots) as greedy act says them: one read, or
        ``half_patch_places`` with ``place_reads: half_patch``; with ``snap_places``, moved onto
        the centres the centre finder sees in the current frame."""
        if not self._chain_slots:
            raise ValueError("said_places needs a chain of places said over the images (action_from: places)")
        if self.config.place_reads == "half_patch":
            said = self.half_patch_places(observations)
        else:
            said = self._greedy_chain(self.prefix(Task.ACT, observations))
        if not self.config.snap_places:
            return said
        tokenizer = self.embodiment.action
        return tokenizer.encode_places(snap(tokenizer.decode_places(said), self.centres_seen(observations)))

    @torch.no_grad()
    def centres_seen(self, observations: Sequence[Observation]) -> list[dict[str, np.ndarray]]:
        """Each observation's object and effector centres in its current frame (``object_centres``)."""
        if self.object_centres is None:
            raise ValueError("centres_seen needs snap_places: true (the model's centre finder)")
        return self.object_centres.centres(self.current_frames(observations))

    def current_frames(self, observations: Sequence[Observation]) -> torch.Tensor:
        """The current frames (B, 3, S, S) at the model's size, in [0, 1]: what the centre finder reads."""
        return torch.stack([self._raw_pixels(obs)[0] for obs in observations]).to(self.device).float() / 255

    def _greedy_chain(self, prefix: Prefix) -> np.ndarray:
        """The chain's slot bins (B, chain slots), each the argmax given those before it."""
        chain = self._chain_slots
        sizes, ids, bins = self.action_slot_sizes[:chain], self.action_ids[:chain], []

        def greedy(k: int, logits: torch.Tensor) -> torch.Tensor:
            bins.append(self._restrict(logits[:, None], sizes[k : k + 1], ids[k : k + 1])[:, 0].argmax(-1))
            return self._action_vocab(bins[-1][:, None], k)[:, 0]

        self._decode_steps(prefix, chain, greedy, point=self.pointer is not None)
        return torch.stack(bins, 1).cpu().numpy()

    @torch.no_grad()
    def predict_instruction(self, observations: Sequence[Observation]) -> list[str]:
        """Greedy instruction from (first, last) frames, stopped at eos."""
        return self._greedy_text(self.prefix(Task.INSTRUCTION, observations), self.text_mask)

    @torch.no_grad()
    def answer(self, observations: Sequence[Observation], prompts: Sequence[str]) -> list[str]:
        """Greedy answers to Stage 0 questions; loc tokens come back as ``<locNNNN>``."""
        return self._greedy_text(self.prefix(Task.ANSWER, observations, prompts), self.answer_mask)

    def _greedy_text(self, prefix: Prefix, allowed: torch.Tensor) -> list[str]:
        eos = self.layout.eos
        chosen = self._decode_steps(
            prefix,
            MAX_INSTRUCTION_TOKENS + 1,
            lambda k, logits: logits.masked_fill(~allowed, float("-inf")).argmax(-1),
            done=lambda chosen: bool((torch.stack(chosen, 1) == eos).any(1).all()),
        )
        texts = []
        for row in torch.stack(chosen, 1).tolist():
            row = row[: row.index(self.layout.eos)] if self.layout.eos in row else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts
