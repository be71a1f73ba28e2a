"""A fresh place pointer fitted on a frozen chain before Stage 1 trains them together.

Trained with the rest of the 8-block chain at Stage 1's learning rate, a new pointer learned in 100
steps to point at *a* block but not at the one named (docs/results, session 19). A linear read-out
of the same model's states tells every block's identity in 98% of cases, so what the pointer lacks
is time: fitted alone on states computed once, thousands of steps take minutes. This is
linear-probing before fine-tuning (Kumar et al. 2022): a new head that starts right does not drag
the body it sits on. The questions are the ``scenes`` objective's, on fresh boards (even scene
seeds; the held-out score uses odd ones, as Stage 1's validation does).
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from sefm_interfaces.typed_config import ConfigError, StrictModel
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.place_pointer import PlacePointer

from .scene_chain import SCENE_KINDS, SceneChains

PLACES = ("object", "target", "effector")
FitKind = Literal[(*SCENE_KINDS, "every")]


class PointerFitConfig(StrictModel):
    """``sefm train pointer``."""

    init: str = Field(..., description="a chain checkpoint (reason: true) whose places the pointer will read")
    out: str = Field(..., description="the checkpoint written: init's weights with the fitted pointer")
    scene_kind: FitKind = Field(
        "blocks8",
        description="boards the questions are asked on (Stage 1's scene_kind), or every: each kind in equal "
        "shares, so that a base's pointer keeps every kind's instructions",
    )
    boards: int = Field(1500, gt=0, description="training boards, two questions each")
    held_out_boards: int = Field(200, gt=0, description="boards scored, none of them trained on")
    steps: int = Field(3000, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(3e-3, gt=0)
    evals: int = Field(10, gt=0, description="held-out scores along the way")
    word_order: bool = Field(
        False, description="give the pointer its words' order (EFMConfig.pointer_word_order) before the fit"
    )
    seed: int = 0


def chain_reads(
    model, chains: SceneChains, boards: int, held_out: int, batch: int, kinds: tuple[str, ...] | None = None
) -> tuple[torch.Tensor, ...]:
    """``EFM.pointer_inputs`` of two questions on each of ``boards`` boards, with their coarse digits;
    with ``kinds``, the boards shared evenly among those board kinds."""
    tokenizer = model.embodiment.action
    slots = list(tokenizer.coarse_place_slots)
    kinds = kinds or (chains.kind,)
    parts = []
    for kind in kinds:
        picks = np.repeat(np.arange(-(-boards // len(kinds))), 2)
        for start in tqdm(range(0, len(picks), batch), desc=f"{kind} chain states", unit="batch", leave=False):
            observations, tokens = chains.batch(tokenizer, held_out, picks[start : start + batch], kind)
            parts.append((*model.pointer_inputs(observations, tokens), torch.as_tensor(tokens[:, slots])))
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def pointer_loss(pointer: PlacePointer, reads: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, list[float]]:
    """Cross-entropy of each place's coarse row and of its column given the true row, as Stage 1's
    teacher forcing scores them; and each place's share of greedy patches (row, then column) right."""
    images, prompt, words, states, digits = reads
    keys, text = pointer.keys(images), (prompt, words)
    loss, right = 0.0, []
    for p in range(len(PLACES)):
        row, col = digits[:, 2 * p], digits[:, 2 * p + 1]
        row_logits = pointer.logits(states[:, 2 * p], keys, text)
        col_logits = pointer.logits(states[:, 2 * p + 1], keys, text, rows=row)
        loss = loss + torch.nn.functional.cross_entropy(row_logits, row)
        loss = loss + torch.nn.functional.cross_entropy(col_logits, col)
        with torch.no_grad():
            said = row_logits.argmax(-1)
            said_col = pointer.logits(states[:, 2 * p + 1], keys, text, rows=said).argmax(-1)
            right.append(float(((said == row) & (said_col == col)).float().mean()))
    return loss, right


def fit_place_pointer(cfg: PointerFitConfig) -> dict:
    """Fit, save ``out`` and return the held-out curve."""
    torch.manual_seed(cfg.seed)
    model = load_checkpoint(cfg.init)
    if not model.config.reason:
        raise ConfigError(f"init {cfg.init}: a place pointer reads a chain of places, which needs reason: true")
    order = cfg.word_order or model.config.pointer_word_order
    model = model.reconfigured(place_pointer=True, pointer_word_order=order).eval()
    started = time.time()
    kinds = SCENE_KINDS if cfg.scene_kind == "every" else (cfg.scene_kind,)
    chains = SceneChains(model.image_size, kinds[0])
    try:
        train = chain_reads(model, chains, cfg.boards, 0, cfg.batch_size, kinds)
        held_out = chain_reads(model, chains, cfg.held_out_boards, 1, cfg.batch_size, kinds)
    finally:
        chains.close()
    pointer = model.pointer.train()
    optimizer = torch.optim.AdamW(pointer.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    every, curve = max(cfg.steps // cfg.evals, 1), []
    bar = tqdm(range(1, cfg.steps + 1), desc="pointer", unit="step")
    for step in bar:
        picks = torch.randint(len(train[0]), (cfg.batch_size,), generator=generator)
        loss, _ = pointer_loss(pointer, tuple(t[picks] for t in train))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pointer.parameters(), 1.0)
        optimizer.step()
        if step % every == 0 or step == cfg.steps:
            with torch.no_grad():
                held_loss, right = pointer_loss(pointer, held_out)
            scores = {place: round(share, 3) for place, share in zip(PLACES, right, strict=True)}
            curve.append({"step": step, "loss": round(float(held_loss), 4), **scores})
            bar.set_postfix(object=f"{right[0]:.3f}", target=f"{right[1]:.3f}")
    summary = {
        "init": cfg.init,
        "questions": len(train[0]),
        "held_out_questions": len(held_out[0]),
        "minutes": round((time.time() - started) / 60, 1),
        "right_patch_on_held_out_boards": curve,
    }
    save_checkpoint(model.eval(), cfg.out, metadata={"source": "pointer_fit", "config": cfg.model_dump(), **summary})
    return summary
