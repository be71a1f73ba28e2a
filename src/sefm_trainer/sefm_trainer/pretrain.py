"""Stage 0: grounding pretraining of our own small foundation model (``sefm pretrain``).

The paper's gain rests on a pretrained VLM: Stage 1 from a random-init PaLI "very significantly
underperformed" (§4.2). No weights can be downloaded here, so the tiny PaliGemma is pretrained
from random init on image-text tasks rendered from the simulator (``grounding``): point to a
named object, name the object at a place, nearest object, spatial relations, the goal an
instruction implies, instruction prediction. No demonstrations, actions or steps-to-go.

A model that reasons in places (``reason``, ``action_from: places``) is also asked ``place_batch``
chain questions a step on fresh boards (``scene_chain``): an instruction naming two things, answered
by the places of the named object, its target and the effector in the chain's own digits, read by
its pointer if it has one. That is pointing and the goal an instruction implies, in the words and
digits Stage 1 acts with; the probe scores it as it scores ``point``.

Resumable like Stage 1: ``last`` + ``trainer_state_<step>.safetensors``, and every batch is
drawn from (seed, step), so a killed run resumes onto the same path. Every ``probe_every`` steps
the held-out probe suite (``probe``) scores each task on scenes no batch uses; the best pointing
score on 8-block scenes keeps ``best``, the checkpoint Stage 1 starts from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from tqdm import tqdm

from sefm_interfaces.typed_config import ConfigError, StrictModel
from sefm_policy.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.losses import EOS_WEIGHT, answer_loss, chain_loss
from sefm_policy.model import EFM
from sefm_sim_bridge.scene import board_point

from .grounding import (
    POINT_TOLERANCE,
    TASK_WEIGHTS,
    TASKS,
    GroundingData,
    kind_weights,
    parse_point,
    point_tokens,
    points_at,
)
from .object_map import ObjectMap, object_map_loss, object_targets
from .scene_chain import SCENE_KINDS, SceneChains
from .schedule import warmup_cosine
from .trainer_state import load_trainer_extra, load_trainer_state, save_resume_point, state_path

BACKGROUND_SCENES = 512
PROBE_KINDS = ("single", "blocks8", "blocks4", "varied", "banana")
SELECT = "blocks8/point"  # the probe score that picks ``best``
PLACE_SELECT = "blocks8/places"  # ... when the model is asked chain questions (place_batch)
PLACES = ("object", "target", "effector")
# EFMConfig switches that add a part starting at zero: a base continues with them switched on.
ADDED_AT_ZERO = ("pointer_word_order",)


class PretrainConfig(StrictModel):
    out: str = Field(..., description="run folder: best, last, metrics.jsonl, probe.jsonl, TensorBoard")
    steps: int = Field(20000, gt=0)
    stop_at: int | None = Field(
        None,
        gt=0,
        description="stop after this step of the `steps` schedule, a resume point written there (rerun with a "
        "later stop_at, or none, to go on): a shipped base taken from the middle of its schedule is one command",
    )
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0, description="peak learning rate: linear warm-up, cosine decay to 10%")
    warmup: int = Field(200, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    questions_per_scene: int = Field(4, gt=0, description="questions asked about each rendered scene")
    probe_every: int = Field(500, gt=0)
    probe_scenes: int = Field(100, gt=0, description="held-out scenes per (kind, task) in the probe")
    checkpoint_every: int = Field(250, gt=0)
    eos_weight: float = Field(
        EOS_WEIGHT, ge=0, description="weight of each answer's eos target (sefm_policy.losses.EOS_WEIGHT: why not 1)"
    )
    unimodal: bool = Field(False, description="vision without words (every object's place in a fixed order)")
    task_weights: dict[str, float] = Field(
        default_factory=lambda: dict(TASK_WEIGHTS), description=f"share of each task's questions; tasks: {TASKS}"
    )
    place_batch: int = Field(
        0,
        ge=0,
        description="chain questions a step on fresh boards, answered in the chain's place digits "
        "(scene_chain); needs model.reason and model.action_from: places",
    )
    objects: bool = Field(
        False,
        description="with place_batch: also teach the tower where every object of those boards is, per patch "
        "(object_map, a dense target like PaliGemma's detection; its head is kept in the resume state only)",
    )
    place_kinds: dict[str, float] = Field(
        default_factory=lambda: {"blocks8": 0.4, "blocks4": 0.2, "varied": 0.3, "banana": 0.1},
        description=f"share of each board kind in the chain questions; kinds: {SCENE_KINDS}",
    )
    seed: int = 0
    init: str | None = Field(
        None,
        description="start from this base's weights (a later rung of pretraining on another mix), with a new "
        "optimizer and schedule; its model must be `model`",
    )
    model: EFMConfig = EFMConfig()

    @field_validator("task_weights", "place_kinds")
    @classmethod
    def _shares_of_known_names(cls, weights: dict[str, float], info) -> dict[str, float]:
        known = TASKS if info.field_name == "task_weights" else SCENE_KINDS
        unknown = sorted(set(weights) - set(known))
        if unknown:
            raise ValueError(f"unknown names {unknown}; expected some of {known}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("shares must be >= 0 with a positive sum")
        return weights

    @model_validator(mode="after")
    def _places_need_a_chain(self) -> PretrainConfig:
        if self.place_batch and not (self.model.reason and self.model.action_from == "places"):
            raise ValueError("place_batch asks for a chain of places: model.reason and model.action_from: places")
        if self.objects and not self.place_batch:
            raise ValueError("objects teaches the boards of the chain questions, and place_batch is 0")
        if self.place_batch and self.unimodal:
            raise ValueError("place_batch asks questions in words, which unimodal pretraining keeps from the model")
        if self.stop_at is not None and self.stop_at > self.steps:
            raise ValueError(f"stop_at ({self.stop_at}) lies past the schedule's steps ({self.steps})")
        return self


@torch.no_grad()
def probe(model: EFM, data: GroundingData, scenes: int, kinds=PROBE_KINDS, tasks=TASKS) -> dict[str, float]:
    """Held-out score per ``kind/task``: point and goal within one block width of the truth,
    the others exact answers."""
    model.eval()
    scores = {}
    for kind in kinds:
        for task in tasks:
            if kind in ("banana", "single") and task in ("name", "nearest", "relation"):
                continue  # one object: nothing to name apart or relate
            questions = data.probe(kind, task, scenes)
            answers = []
            for i in range(0, len(questions), 64):
                chunk = questions[i : i + 64]
                answers += model.answer([q.observation for q in chunk], [q.prompt for q in chunk])
            hits = [
                points_at(parse_point(a), q.truth) if q.truth is not None else a.strip() == q.answer
                for q, a in zip(questions, answers, strict=True)
            ]
            scores[f"{kind}/{task}"] = float(np.mean(hits))
    model.train()
    return scores


@torch.no_grad()
def place_probe(model: EFM, chains: SceneChains, scenes: int, kinds=SCENE_KINDS) -> dict[str, float]:
    """Held-out share of chain questions whose greedy places lie within one block width of the
    truth: ``kind/places`` for the named object (the ``point`` of a chain), and its target and
    the effector apart."""
    model.eval()
    scores = {}
    for kind in kinds:
        observations, truth = chains.questions(1, np.arange(scenes), kind)
        said = np.concatenate(
            [
                model.embodiment.action.decode_places(model.said_places(observations[i : i + 64]))
                for i in range(0, len(observations), 64)
            ]
        )
        hits = np.linalg.norm(_on_board(said) - _on_board(truth), axis=-1) <= POINT_TOLERANCE
        scores[f"{kind}/places"] = float(hits[:, 0].mean())
        for k, place in enumerate(PLACES[1:], start=1):
            scores[f"{kind}/places_{place}"] = float(hits[:, k].mean())
    model.train()
    return scores


def _on_board(places: np.ndarray) -> np.ndarray:
    """(B, places, 2) image (column, row) -> board (x, y) in metres."""
    return np.array([[board_point(*p) for p in row] for row in places])


def place_questions(chains: SceneChains, tokenizer, cfg: PretrainConfig, step: int, grid: int = 0):
    """``place_batch`` chain questions of ``step`` (observations, digits), board kinds drawn by
    ``place_kinds``; from (seed, step), as every batch is. Third: with a patch ``grid``, each
    board's ``object_targets`` (the dense ``objects`` target), else None."""
    rng = np.random.default_rng([cfg.seed, step, 5])
    kinds = list(cfg.place_kinds)
    shares = np.array([cfg.place_kinds[k] for k in kinds])
    boards = -(-cfg.place_batch // chains.per_scene)
    drawn = rng.choice(len(kinds), boards, p=shares / shares.sum())
    picks = rng.integers(0, 2**30, boards)
    observations, digits, targets = [], [], []
    for k in np.unique(drawn):
        chosen = np.repeat(picks[drawn == k], chains.per_scene)
        obs, places, truth = chains.boards(0, chosen, kinds[int(k)])
        observations += obs
        digits += [tokenizer.encode(np.zeros(2), p) for p in places]
        targets += [object_targets(objects, effector, grid) for objects, effector in truth] if grid else []
    n = cfg.place_batch
    return observations[:n], np.stack(digits[:n]), np.stack(targets[:n]) if grid else None


def pretrain(cfg: PretrainConfig) -> dict:
    """Run (or resume) Stage 0; returns the best probe score and its step."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last"
    torch.manual_seed(cfg.seed)
    data = GroundingData(cfg.model.model_image_size, cfg.questions_per_scene, cfg.unimodal, cfg.task_weights)
    chains = SceneChains(cfg.model.model_image_size) if cfg.place_batch else None
    resuming = (last / "manifest.json").exists()
    if resuming:
        model = load_checkpoint(last)
    elif cfg.init is not None:
        model = _base_to_continue(cfg)
    else:
        model = fresh_base(cfg, data)
    model.train()
    head = ObjectMap(model.backbone.config.vision_config.hidden_size) if cfg.objects else None
    grid = math.isqrt(model.tokens_per_image) if head is not None else 0
    params = [*model.parameters(), *(head.parameters() if head is not None else ())]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, {"score": -1.0, "step": None}
    if resuming:
        saved = read_manifest(last)["metadata"]["step"]
        step, best = load_trainer_state(optimizer, state_path(out, saved))
        if head is not None:
            head.load_state_dict(load_trainer_extra(state_path(out, saved)))
        print(f"pretrain: resuming {out} at step {step}")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"))
    select = "list" if cfg.unimodal else PLACE_SELECT if chains else SELECT
    with (out / "metrics.jsonl").open("a") as metrics, (out / "probe.jsonl").open("a") as probes:
        end = cfg.stop_at or cfg.steps
        bar = tqdm(total=end, initial=step, desc="stage 0", unit="step")
        while step < end:
            for group in optimizer.param_groups:
                group["lr"] = warmup_cosine(cfg.lr, step, cfg.warmup, cfg.steps)
            questions = data.batch(cfg.seed, step, cfg.batch_size, kind_weights(step / cfg.steps))
            result = answer_loss(
                model,
                [q.observation for q in questions],
                [q.prompt for q in questions],
                [q.answer for q in questions],
                eos_weight=cfg.eos_weight,
            )
            loss, logged = result.loss, dict(result.metrics)
            if chains is not None:
                observations, digits, targets = place_questions(chains, model.embodiment.action, cfg, step, grid)
                places = chain_loss(model, observations, digits)
                loss = loss + places.loss
                logged |= {k.replace("chain/", "places/"): v for k, v in places.metrics.items()}
                if head is not None:
                    seen = object_map_loss(model, observations, targets, head)
                    loss = loss + seen.loss
                    logged |= seen.metrics
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in logged.items() if k.endswith("/loss")})
            for key, value in logged.items():
                writer.add_scalar(f"train/{key}", value, step)
            metrics.write(json.dumps({"step": step, **logged}) + "\n")
            if step % cfg.probe_every == 0 or step == cfg.steps:  # not at stop_at: a straight run would not
                scores = unimodal_probe(model, data, cfg) if cfg.unimodal else probe(model, data, cfg.probe_scenes)
                if chains is not None:
                    scores |= place_probe(model, chains, cfg.probe_scenes)
                for key, value in scores.items():
                    writer.add_scalar(f"probe/{key}", value, step)
                probes.write(json.dumps({"step": step, **scores}) + "\n")
                probes.flush()
                tqdm.write(f"stage 0 step {step}: " + " ".join(f"{k} {v:.2f}" for k, v in scores.items()))
                if scores[select] > best["score"]:
                    best = {"score": scores[select], "step": step}
                    save_checkpoint(model, out / "best", {"stage": 0, "step": step, "probe": scores})
            if step % cfg.checkpoint_every == 0 or step == end:
                metrics.flush()
                extra = head.state_dict() if head is not None else None
                save_resume_point(out, model, optimizer, step, best, {"stage": 0}, extra)
        bar.close()
    writer.close()
    data.close()
    if chains is not None:
        chains.close()
    return best


def fresh_base(cfg: PretrainConfig, data: GroundingData) -> EFM:
    """``model`` from random init (the global torch seed set), its background fitted on scenes of
    a step no training batch reaches: what Stage 0 starts from, and the scratch model beside a base."""
    model = EFM.build(cfg.model)
    model.fit_background([q.observation for q in data.batch(cfg.seed + 1, 10**9, BACKGROUND_SCENES)])
    return model


def _base_to_continue(cfg: PretrainConfig) -> EFM:
    """``init``'s model, refused unless it is the one ``model`` describes (the probes and the chain
    questions are asked in its digits), save for parts ``model`` adds that start at zero."""
    model = load_checkpoint(cfg.init)
    theirs, ours = model.config.model_dump(), cfg.model.model_dump()
    added = {k: True for k in ADDED_AT_ZERO if ours[k] and not theirs.get(k)}
    differ = sorted(k for k in ours if theirs.get(k) != ours[k] and k not in added)
    if differ:
        raise ConfigError(f"init: {cfg.init} is not the model `model` describes; it differs in {differ}")
    return model.reconfigured(**added) if added else model


@torch.no_grad()
def unimodal_probe(model: EFM, data: GroundingData, cfg: PretrainConfig) -> dict[str, float]:
    """Share of held-out 8-block scenes whose listed places are all within one block width."""
    model.eval()
    questions = data.probe("blocks8", "list", cfg.probe_scenes)
    hits = []
    for q in questions:
        answer = model.answer([q.observation], [q.prompt])[0].split()
        n = point_tokens()
        got = [parse_point(" ".join(answer[k : k + n])) for k in range(0, n * len(q.truth), n)]
        hits.append(all(points_at(g, xy) for g, xy in zip(got, q.truth, strict=True)))
    model.train()
    return {"list": float(np.mean(hits))}
