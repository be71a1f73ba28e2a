"""Stage 0: grounding pretraining of our own small foundation model (``sefm pretrain``).

The paper's gain rests on a pretrained VLM: Stage 1 from a random-init PaLI "very significantly
underperformed" (§4.2). No weights can be downloaded here, so the tiny PaliGemma is pretrained
from random init on image-text tasks rendered from the simulator (``grounding``): point to a
named object, name the object at a place, nearest object, spatial relations, the goal an
instruction implies, instruction prediction. No demonstrations, actions or steps-to-go.

Resumable like Stage 1: ``last`` + ``trainer_state_<step>.safetensors``, and every batch is
drawn from (seed, step), so a killed run resumes onto the same path. Every ``probe_every`` steps
the held-out probe suite (``probe``) scores each task on scenes no batch uses; the best pointing
score on 8-block scenes keeps ``best``, the checkpoint Stage 1 starts from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, field_validator
from tqdm import tqdm

from sefm_interfaces.typed_config import StrictModel
from sefm_policy.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.losses import EOS_WEIGHT, answer_loss
from sefm_policy.model import EFM

from .grounding import TASK_WEIGHTS, TASKS, GroundingData, kind_weights, parse_point, point_tokens, points_at
from .schedule import warmup_cosine
from .trainer_state import load_trainer_state, save_resume_point, state_path

BACKGROUND_SCENES = 512
PROBE_KINDS = ("single", "blocks8", "blocks4", "varied", "banana")
SELECT = "blocks8/point"  # the probe score that picks ``best``


class PretrainConfig(StrictModel):
    out: str = Field(..., description="run folder: best, last, metrics.jsonl, probe.jsonl, TensorBoard")
    steps: int = Field(20000, gt=0)
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
    seed: int = 0
    model: EFMConfig = EFMConfig()

    @field_validator("task_weights")
    @classmethod
    def _known_tasks(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; expected some of {TASKS}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("task weights must be >= 0 with a positive sum")
        return weights


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


def pretrain(cfg: PretrainConfig) -> dict:
    """Run (or resume) Stage 0; returns the best probe score and its step."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last"
    torch.manual_seed(cfg.seed)
    data = GroundingData(cfg.model.model_image_size, cfg.questions_per_scene, cfg.unimodal, cfg.task_weights)
    resuming = (last / "manifest.json").exists()
    if resuming:
        model = load_checkpoint(last)
    else:
        model = EFM.build(cfg.model)
        scenes = data.batch(cfg.seed + 1, 10**9, BACKGROUND_SCENES)  # a step no training batch reaches
        model.fit_background([q.observation for q in scenes])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, {"score": -1.0, "step": None}
    if resuming:
        saved = read_manifest(last)["metadata"]["step"]
        step, best = load_trainer_state(optimizer, state_path(out, saved))
        print(f"pretrain: resuming {out} at step {step}")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"))
    select = "list" if cfg.unimodal else SELECT
    with (out / "metrics.jsonl").open("a") as metrics, (out / "probe.jsonl").open("a") as probes:
        bar = tqdm(total=cfg.steps, initial=step, desc="stage 0", unit="step")
        while step < cfg.steps:
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
            optimizer.zero_grad()
            result.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{result.metrics['answer/loss']:.3f}")
            for key, value in result.metrics.items():
                writer.add_scalar(f"train/{key}", value, step)
            metrics.write(json.dumps({"step": step, **result.metrics}) + "\n")
            if step % cfg.probe_every == 0 or step == cfg.steps:
                scores = unimodal_probe(model, data, cfg) if cfg.unimodal else probe(model, data, cfg.probe_scenes)
                for key, value in scores.items():
                    writer.add_scalar(f"probe/{key}", value, step)
                probes.write(json.dumps({"step": step, **scores}) + "\n")
                probes.flush()
                tqdm.write(f"stage 0 step {step}: " + " ".join(f"{k} {v:.2f}" for k, v in scores.items()))
                if scores[select] > best["score"]:
                    best = {"score": scores[select], "step": step}
                    save_checkpoint(model, out / "best", {"stage": 0, "step": step, "probe": scores})
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                metrics.flush()
                save_resume_point(out, model, optimizer, step, best, {"stage": 0})
        bar.close()
    writer.close()
    data.close()
    return best


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
