"""Stage 1: supervised fine-tuning on imitation episodes (paper App. A.3, B).

Each batch is split uniformly across the objectives (behaviour cloning, steps-to-go, and for
LanguageTable instruction prediction); AdamW trains the full model. The best checkpoint per
objective on a validation split is kept: ``best_bc`` initialises the Stage 2 policy,
``best_steps`` becomes its frozen reward model. ``last`` holds weights, optimizer and step,
and a killed run resumes from it; batches are drawn from a generator seeded by (seed, step),
so a resumed run takes exactly the steps an uninterrupted one would.

Data parallel: under ``torchrun`` each process takes a shard of every batch and gradients are
averaged with ``torch.distributed.all_reduce`` (gloo on CPU).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field, model_validator
from tqdm import tqdm

from sefm_interfaces.typed_config import ConfigError, StrictModel
from sefm_policy.checkpoint import load_checkpoint, load_vision_tower, read_manifest, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.deepen import deepened
from sefm_policy.losses import (
    LossOutput,
    answer_loss,
    bc_loss,
    chain_loss,
    images_rolled,
    instruction_loss,
    plan_loss,
    steps_to_go_loss,
)
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation
from sefm_policy.tokenizers import GroundedActionTokenizer, JointTokenizer
from sefm_sim_bridge.scene import image_point
from sefm_sim_bridge.tasks import LOCATIONS, PREPOSITIONS, VERBS, region_centre

from .bag_reader import load_episodes, select_fraction
from .dataset import Step, StepIndex
from .object_map import ObjectMap, object_map_loss, step_targets
from .schedule import warmup_cosine
from .trainer_state import load_trainer_extra, load_trainer_state, save_resume_point, state_path

if TYPE_CHECKING:
    from .grounding import GroundingData
    from .scene_chain import SceneChains

Objective = Literal["bc", "steps", "instruction", "grounding", "plan", "objects", "chain", "scenes"]
# The boards the scenes objective can render: Stage 0's scene kinds that name a block or an object to move.
SceneKind = Literal["blocks4", "blocks8", "varied", "banana", "shapes"]
BACKGROUND_SAMPLE = 2048  # training steps averaged into the model's background


class SFTConfig(StrictModel):
    data: str = Field(..., description="folder of episode bags")
    out: str = Field(..., description="run folder: checkpoints, metrics.jsonl, TensorBoard events")
    steps: int = Field(2000, gt=0)
    batch_size: int = Field(32, gt=0, description="global batch, split uniformly across objectives")
    lr: float = Field(3e-4, gt=0)
    warmup: int = Field(0, ge=0, description="steps of linear learning-rate warm-up")
    cosine: bool = Field(False, description="after warm-up, decay the learning rate by a cosine to 10% at `steps`")
    weight_decay: float = Field(0.01, ge=0)
    objectives: list[Objective] = Field(
        default_factory=lambda: ["bc", "steps", "instruction"],
        min_length=1,
        description="plan: the action from its true places in the image-free pass alone (action_from: places), "
        "the place -> action map without pixels, so cheap that it can take many more examples a step; "
        "objects: where every object of the frame is, per patch of the vision tower (object_map); "
        "chain: a reasoning chain's places alone for an instruction naming two random blocks of the frame; "
        "scenes: the same on a freshly rendered board every time (scene_chain), not the demonstrations' boards",
    )
    objective_batch: dict[Objective, int] = Field(
        default_factory=dict, description="examples per step of these objectives; the rest share batch_size evenly"
    )
    scene_kind: SceneKind = Field(
        "blocks4", description="the boards the scenes objective renders (sefm_sim_bridge.grounding_scenes)"
    )
    scene_effector_near: float = Field(
        0.0,
        ge=0,
        le=1,
        description="scenes: the share of boards whose effector is put 4-12 cm from the block the questions "
        "name, where the from-base Stage 1's greedy cycles misread that block (scene_chain)",
    )
    neighbour_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="chain and scenes: feed each place's coarse digit one cell off this often while training, "
        "its finer digits then those of the nearer edge (PlaceTokenizer.neighbour_teaching)",
    )
    val_fraction: float = Field(0.1, gt=0, lt=1)
    val_every: int = Field(100, gt=0)
    val_samples: int = Field(256, gt=0, description="validation steps per objective")
    checkpoint_every: int = Field(100, gt=0)
    data_fraction: float | None = Field(None, gt=0, le=1, description="train on this share of episodes")
    seed: int = 0
    reason: bool = Field(
        False, description="act says where the object, its target and the effector are before acting (EFMConfig.reason)"
    )
    place_radices: list[int] | None = Field(
        None, description="rewrite the chain's places in these digits (EFMConfig.place_radices), e.g. of an --init"
    )
    action_from: Literal["images", "places"] | None = Field(
        None, description="what the action's tokens attend to (EFMConfig.action_from), e.g. of an --init"
    )
    patch_positions: bool | None = Field(
        None, description="give the image tokens 2-D position codes (EFMConfig.patch_positions), e.g. of an --init"
    )
    place_pointer: bool | None = Field(
        None, description="read the places' coarse digits as a pointer too (EFMConfig.place_pointer), e.g. of an --init"
    )
    steps_from: Literal["images", "places"] | None = Field(
        None,
        description="what steps-to-go reads (EFMConfig.steps_from), e.g. of an --init; with places, training "
        "tells it the demonstration's true places",
    )
    slot_tokens: Literal["shared", "per_slot"] | None = Field(
        None, description="the action slots' tokens (EFMConfig.slot_tokens), e.g. of an --init"
    )
    steps_per_bin: Literal[1, 2] | None = Field(
        None, description="steps-to-go bin width (EFMConfig.steps_per_bin), e.g. of an --init never taught steps"
    )
    action_weight: float = Field(
        1.0, gt=0, description="weight of the action's own tokens against a reasoning chain's place tokens in bc"
    )
    init: str | None = Field(
        None, description="checkpoint to start from (the Stage 0 base); its config and background replace model"
    )
    init_vision: str | None = Field(
        None,
        description="checkpoint whose vision tower (and background) a freshly built model starts from; "
        "model.vision, image_size and pixel_norm must match it, the decoder is model.text's",
    )
    deepen: int | None = Field(
        None,
        gt=0,
        description="insert this many decoder layers into the init checkpoint, each starting as the identity "
        "(sefm_policy.deepen): it keeps what it computes and gains depth to learn with",
    )
    freeze_vision: bool = Field(
        False,
        description="train everything but the vision tower, as Stage 2 does: a low-lr polish of an --init's "
        "decoder that cannot overfit the tower to the demonstrations' scenes",
    )
    device: str = Field(
        "cpu",
        pattern=r"^(cpu|cuda(:\d+)?)$",
        description="where the model trains: cpu, cuda or cuda:N (batches are assembled on the CPU either way)",
    )
    model: EFMConfig = EFMConfig()

    @model_validator(mode="after")
    def _check_objective_batch(self) -> SFTConfig:
        unknown = sorted(set(self.objective_batch) - set(self.objectives))
        if unknown:
            raise ValueError(f"objective_batch names {unknown}, which are not in objectives {self.objectives}")
        if any(n < 1 for n in self.objective_batch.values()):
            raise ValueError(f"objective_batch sizes must be >= 1, got {self.objective_batch}")
        if self.init is not None and self.init_vision is not None:
            raise ValueError("init_vision builds a fresh model on a checkpoint's tower, init loads a whole one")
        if self.deepen is not None and self.init is None:
            raise ValueError("deepen inserts layers into the init checkpoint, and init is not set")
        if self.neighbour_rate and not {"chain", "scenes"} & set(self.objectives):
            raise ValueError("neighbour_rate teaches the chain and scenes objectives, and objectives has neither")
        return self


class Data:
    """Training and validation samples per objective, from the successful episodes."""

    def __init__(self, cfg: SFTConfig) -> None:
        loaded = load_episodes(cfg.data, progress=False)
        for path, reason in loaded.skipped:
            print(f"sft: skipping {path}: {reason}")
        episodes = [e for e in loaded.episodes if e.meta.success]
        if not episodes:
            raise ConfigError(f"no successful episodes in {cfg.data}")
        names = [e.path.name for e in episodes]
        val_names = set(select_fraction(names, cfg.val_fraction, seed=cfg.seed + 1))
        train = [e for e in episodes if e.path.name not in val_names]
        if cfg.data_fraction is not None:
            keep = set(select_fraction([e.path.name for e in train], cfg.data_fraction, seed=cfg.seed))
            train = [e for e in train if e.path.name in keep]
        kinds = sorted({e.meta.embodiment for e in episodes})
        if kinds != [cfg.model.embodiment]:
            raise ConfigError(f"{cfg.data} holds {kinds} episodes but model.embodiment is {cfg.model.embodiment!r}")
        if "instruction" in cfg.objectives and cfg.model.embodiment != "language_table":
            raise ConfigError("objectives: instruction prediction is for LanguageTable episodes only (paper App. B)")
        for objective in ("objects", "chain"):
            if objective in cfg.objectives and any(e.objects is None or e.effector is None for e in episodes):
                raise ConfigError(
                    f"objectives: {objective} needs demonstrations that record their objects ({cfg.data})"
                )
        if "grounding" in cfg.objectives and cfg.model.embodiment != "language_table":
            raise ConfigError("objectives: grounding asks about LanguageTable scenes; it is for LanguageTable only")
        self.train, self.val = StepIndex(train), StepIndex([e for e in episodes if e.path.name in val_names])
        self.tokenizer = None  # the model's action tokenizer, set once the model exists
        self.grounding: GroundingData | None = None  # Stage 0's questions, set once the model exists
        self.scenes: SceneChains | None = None  # chain questions on fresh boards, set once the model exists
        self.patch_grid = 0  # patches per side of the model's images, set once the model exists
        self.neighbour_rate = cfg.neighbour_rate
        if not len(self.train) or not len(self.val):
            raise ConfigError(f"need episodes for both training and validation (have {len(episodes)})")

    def joint_stats(self) -> tuple[list[float], list[float]]:
        """Per-joint range of the training commands and states: ALOHA's token normalisation."""
        values = [e.actions.reshape(-1, e.actions.shape[-1]) for e in self.train.episodes]
        values += [e.joint_states for e in self.train.episodes if e.joint_states is not None]
        stats = JointTokenizer.from_data(np.concatenate(values), margin=0.01)
        return list(stats.low), list(stats.high)

    def background_sample(self, seed: int, size: int = BACKGROUND_SAMPLE) -> list[Observation]:
        """Training observations to fit the model's background on; the same on every DDP rank."""
        picks = np.random.default_rng([seed, 7]).permutation(len(self.train))[:size]
        return [self.train[int(i)].observation for i in picks]

    def population(self, objective: Objective, index: StepIndex) -> int:
        """How many samples ``objective`` draws its picks from."""
        if objective in FRESH:
            return POPULATION
        return len(index.episodes) if objective == "instruction" else len(index)

    def batch(self, objective: Objective, index: StepIndex, picks: np.ndarray):
        if objective == "grounding":
            held_out = 1 if index is self.val else 0
            questions = self.grounding.batch(held_out, picks, len(picks))
            return [q.observation for q in questions], ([q.prompt for q in questions], [q.answer for q in questions])
        if objective == "scenes":
            obs, tokens = self.scenes.batch(self.tokenizer, 1 if index is self.val else 0, picks)
            return obs, self.taught(index, picks, tokens)
        if objective == "instruction":
            eps = [index.episodes[int(i) % len(index.episodes)] for i in picks]
            obs = [Observation(images=(e.frames["front"][0], e.frames["front"][e.goal_at])) for e in eps]
            return obs, [e.meta.instruction for e in eps]
        steps = [index[int(i)] for i in picks]
        obs = [s.observation for s in steps]
        if objective == "objects":
            return obs, np.stack([step_targets(index.episodes[s.episode], s.t, self.patch_grid) for s in steps])
        if objective == "chain":
            asked = [
                relabelled(index.episodes[s.episode], s.t, np.random.default_rng(int(i)))
                for s, i in zip(steps, picks, strict=True)
            ]
            obs = [replace(o, instruction=instruction) for o, (instruction, _) in zip(obs, asked, strict=True)]
            return obs, self.taught(index, picks, np.stack([self.tokenizer.encode(np.zeros(2), p) for _, p in asked]))
        if objective in ("bc", "plan"):
            return obs, action_targets(self.tokenizer, index, steps)
        places = None  # a reasoning model's true chain (and action), for one whose steps-to-go reads its places
        if isinstance(self.tokenizer, GroundedActionTokenizer):
            places = action_targets(self.tokenizer, index, steps)
        return obs, (np.array([s.steps_to_go for s in steps], dtype=np.float64), places)

    def taught(self, index: StepIndex, picks: np.ndarray, tokens: np.ndarray):
        """A chain's digits; in training, some coarse ones fed a cell off (``neighbour_rate``), drawn
        from the picks so that a resumed run feeds what an uninterrupted one would."""
        if index is self.val or not self.neighbour_rate:
            return tokens
        rng = np.random.default_rng([int(picks[0]), len(picks), 29])
        return self.tokenizer.neighbour_teaching(tokens, rng, self.neighbour_rate)


def action_targets(tokenizer, index: StepIndex, steps: Sequence[Step]) -> np.ndarray:
    """The steps' actions as the model's tokens; a reasoning tokenizer's places come from the
    objects each demonstration recorded."""
    if isinstance(tokenizer, GroundedActionTokenizer):
        return np.stack([tokenizer.encode(s.action, places_at(index.episodes[s.episode], s.t)) for s in steps])
    return np.stack([tokenizer.encode(s.action) for s in steps])


def chain_places(objects: dict, effector, obj: str, target: str | None, location: str | None) -> np.ndarray:
    """(3, 2) image (column, row) of the object to move, its target (a block, or a region's centre)
    and the effector, from board places in metres: what a reasoning policy says before it acts."""
    goal = objects[target] if target else region_centre(location)
    return np.array([image_point(xy) for xy in (objects[obj], goal, effector)])


def places_at(episode, t: int) -> np.ndarray:
    """``chain_places`` at step ``t`` of a demonstration that recorded its objects."""
    extra = episode.meta.extra
    if episode.objects is None or episode.effector is None or "obj" not in extra:
        raise ConfigError(f"{episode.path}: reasoning needs demonstrations that record objects and the effector")
    objects = {name: track[t] for name, track in episode.objects.items()}
    return chain_places(objects, episode.effector[t], extra["obj"], extra.get("target"), extra.get("location"))


def relabelled(episode, t: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """An instruction of the episode's kind naming random things of step ``t``'s frame, and its chain
    of places: every frame can teach where each of its objects is, not only the ones its
    demonstration was about."""
    objects = {name: track[t] for name, track in episode.objects.items()}
    return ask(objects, episode.effector[t], rng, to_block=episode.meta.extra.get("target") is not None)


def ask(
    objects: dict, effector, rng: np.random.Generator, to_block: bool, obj: str | None = None
) -> tuple[str, np.ndarray]:
    """An instruction naming random things of a board (two blocks when ``to_block``, else an object
    and a region of the table) and its chain of places; ``obj``: the object it names to move."""
    names = sorted(objects)
    verb = VERBS[rng.integers(len(VERBS))]
    if to_block and len(names) >= 2:
        if obj is None:
            obj, target = (names[int(k)] for k in rng.choice(len(names), 2, replace=False))
        else:
            others = [n for n in names if n != obj]
            target = others[int(rng.integers(len(others)))]
        prep = PREPOSITIONS[rng.integers(len(PREPOSITIONS))]
        return f"{verb} the {obj} {prep} the {target}", chain_places(objects, effector, obj, target, None)
    obj = names[rng.integers(len(names))] if obj is None else obj
    location = sorted(LOCATIONS)[rng.integers(len(LOCATIONS))]
    instruction = f"{verb} the {obj} to the {location} of the table"
    return instruction, chain_places(objects, effector, obj, None, location)


def grounding_loss(model: EFM, observations, questions) -> LossOutput:
    """Stage 0's questions kept in the mix (RT-2's co-fine-tuning): the binding of words to
    places that Stage 1 reads its frames with is not trained away by the action targets."""
    prompts, answers = questions
    return answer_loss(model, observations, prompts, answers)


def scenes_loss(model: EFM, observations, tokens) -> LossOutput:
    """``chain_loss`` on fresh boards, logged apart from the demonstrations' chain."""
    out = chain_loss(model, observations, tokens)
    return LossOutput(out.loss, {k.replace("chain/", "scenes/"): v for k, v in out.metrics.items()})


def told_steps_loss(model: EFM, observations, targets) -> LossOutput:
    """``steps_to_go_loss`` on ``Data``'s (steps to go, true places or None)."""
    return steps_to_go_loss(model, observations, *targets)


LOSSES = {
    "bc": bc_loss,
    "steps": told_steps_loss,
    "instruction": instruction_loss,
    "grounding": grounding_loss,
    "plan": plan_loss,
    "chain": chain_loss,
    "scenes": scenes_loss,
}
SELECT = {
    "bc": "bc/loss",
    "steps": "steps/loss",
    "instruction": "instr/loss",
    "grounding": "answer/loss",
    "plan": "plan/loss",
    "objects": "objects/loss",
    "chain": "chain/loss",
    "scenes": "scenes/loss",
}
# SFTConfig keys that, when set, rewrite the same EFMConfig key of the model (an --init's too).
MODEL_OVERRIDES = (
    "place_radices",
    "action_from",
    "slot_tokens",
    "patch_positions",
    "place_pointer",
    "steps_from",
    "steps_per_bin",
)
POPULATION = 2**30  # grounding, scenes: scenes are drawn fresh, not from the episodes
FRESH = ("grounding", "scenes")


def objective_loss(objective: str, cfg: SFTConfig, head: ObjectMap | None = None):
    if objective == "bc":
        return partial(bc_loss, action_weight=cfg.action_weight)
    if objective == "objects":
        return partial(object_map_loss, head=head)
    return LOSSES[objective]


def objective_split(batch_size: int, objectives: list[str], fixed: dict[str, int] | None = None) -> dict[str, int]:
    """Examples per objective a step, in ``objectives``' order: ``fixed`` ones as given, the
    others share ``batch_size`` evenly."""
    fixed = fixed or {}
    shared = [o for o in objectives if o not in fixed]
    base, extra = divmod(batch_size, max(len(shared), 1))
    even = {o: base + (i < extra) for i, o in enumerate(shared)}
    return {o: fixed.get(o, even.get(o)) for o in objectives}


def shard(n: int, rank: int, world: int) -> slice:
    per = -(-n // world)
    return slice(rank * per, min(n, (rank + 1) * per))


def train_sft(cfg: SFTConfig) -> dict:
    """Run (or resume) Stage 1; returns the best validation losses and their steps."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last"
    torch.manual_seed(cfg.seed)
    data = Data(cfg)
    resuming = (last / "manifest.json").exists()
    if cfg.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {cfg.device!r} asked for, but torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = True
    if resuming:
        model = load_checkpoint(last)
    elif cfg.init is not None:
        model = load_checkpoint(cfg.init)
        if model.config.embodiment != cfg.model.embodiment:
            kind = model.config.embodiment
            raise ConfigError(f"init {cfg.init} is a {kind} model; model.embodiment is {cfg.model.embodiment}")
        if cfg.deepen is not None:
            model = deepened(model, cfg.deepen, seed=cfg.seed)
    else:
        model_cfg = cfg.model
        if model_cfg.embodiment == "aloha" and model_cfg.joint_low is None:
            low, high = data.joint_stats()
            model_cfg = model_cfg.model_copy(update={"joint_low": low, "joint_high": high})
        model = EFM.build(model_cfg)
        if cfg.init_vision is not None:
            load_vision_tower(model, cfg.init_vision)
        else:
            model.fit_background(data.background_sample(cfg.seed))
    changes = {"reason": cfg.reason}
    changes |= {key: getattr(cfg, key) for key in MODEL_OVERRIDES if getattr(cfg, key) is not None}
    if any(getattr(model.config, key) != value for key, value in changes.items()):
        model = model.reconfigured(**changes)
    model = model.to(cfg.device)
    for objective in ("chain", "scenes"):
        if objective in cfg.objectives and not model.config.reason:
            raise ConfigError(f"objectives: {objective} trains a reasoning chain's places, which needs reason: true")
    if "plan" in cfg.objectives and model.config.action_from != "places":
        raise ConfigError("objectives: plan trains the action from places alone, which needs action_from: places")
    data.tokenizer = model.embodiment.action
    if cfg.neighbour_rate and len(model.config.place_radices) < 2:
        raise ConfigError(f"neighbour_rate needs places of two digits or more, not {model.config.place_radices}")
    if "grounding" in cfg.objectives:
        from .grounding import GroundingData  # renders scenes: with scenes, the objectives that need the sim

        data.grounding = GroundingData(model.image_size)
    if "scenes" in cfg.objectives:
        from .scene_chain import SceneChains

        data.scenes = SceneChains(model.image_size, cfg.scene_kind, effector_near=cfg.scene_effector_near)
    head = None
    if "objects" in cfg.objectives:
        data.patch_grid = math.isqrt(model.tokens_per_image)
        head = ObjectMap(model.backbone.config.vision_config.hidden_size).to(cfg.device)
    losses = {o: objective_loss(o, cfg, head) for o in cfg.objectives}
    if cfg.freeze_vision:
        model.freeze_vision_tower()
    model.train()
    params = [p for p in (*model.parameters(), *(head.parameters() if head is not None else ())) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, {o: {"loss": float("inf"), "step": None} for o in cfg.objectives}
    if resuming:
        saved = read_manifest(last)["metadata"]["step"]
        step, best = load_trainer_state(optimizer, state_path(out, saved))
        if head is not None:
            head.load_state_dict(load_trainer_extra(state_path(out, saved)))
        print(f"sft: resuming {out} at step {step}")
    split = objective_split(cfg.batch_size, cfg.objectives, cfg.objective_batch)
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    metrics_file = (out / "metrics.jsonl").open("a") if rank == 0 else None
    bar = tqdm(total=cfg.steps, initial=step, desc="stage 1", unit="step", disable=rank != 0)
    while step < cfg.steps:
        rng = np.random.default_rng([cfg.seed, step])
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(cfg.lr, step, cfg.warmup, cfg.steps, decay=cfg.cosine)
        optimizer.zero_grad()
        logged = {}
        for objective, n in split.items():
            population = data.population(objective, data.train)
            picks = rng.integers(0, population, n)[shard(n, rank, world)]
            obs, target = data.batch(objective, data.train, picks)
            out_loss = losses[objective](model, obs, target)
            (out_loss.loss / len(split)).backward()
            logged.update(out_loss.metrics)
        if world > 1:
            for p in params:  # the objects head's too, or the ranks' heads drift apart
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
        optimizer.step()
        step += 1
        bar.update(1)
        if rank == 0:
            for key, value in logged.items():
                writer.add_scalar(f"train/{key}", value, step)
            metrics_file.write(json.dumps({"step": step, **logged}) + "\n")
        if step % cfg.val_every == 0 or step == cfg.steps:
            val = validate(model, data, cfg, losses)
            for objective in cfg.objectives:
                loss = val[SELECT[objective]]
                if loss < best[objective]["loss"]:
                    best[objective] = {"loss": loss, "step": step}
                    if rank == 0:
                        save_checkpoint(model, out / f"best_{objective}", {"step": step, "val_loss": loss})
            if rank == 0:
                for key, value in val.items():
                    writer.add_scalar(f"val/{key}", value, step)
                metrics_file.write(json.dumps({"step": step, "val": val}) + "\n")
                bar.set_postfix({k: f"{v:.3f}" for k, v in val.items() if k.endswith(("loss", "image_gain"))})
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            metrics_file.flush()
            extra = head.state_dict() if head is not None else None
            save_resume_point(out, model, optimizer, step, best, {}, extra)
    bar.close()
    if rank == 0:
        writer.close()
        metrics_file.close()
    return best


@torch.no_grad()
def validate(model: EFM, data: Data, cfg: SFTConfig, losses: dict | None = None) -> dict[str, float]:
    """Held-out metrics per objective; ``losses``: the training's loss functions (a head's too)."""
    losses = losses or {o: objective_loss(o, cfg) for o in cfg.objectives}
    model.eval()
    rng = np.random.default_rng([cfg.seed, 10**9])
    result = {}
    for objective in cfg.objectives:
        if objective in FRESH:
            picks = np.arange(cfg.val_samples)
        else:
            picks = rng.permutation(data.population(objective, data.val))[: cfg.val_samples]
        metrics = []
        for chunk in np.array_split(picks, max(1, len(picks) // 64)):
            obs, target = data.batch(objective, data.val, chunk)
            m = losses[objective](model, obs, target).metrics
            if objective == "bc":
                m["bc/image_gain"] = bc_loss(model, images_rolled(obs), target).metrics["bc/loss"] - m["bc/loss"]
            if objective == "steps" and model.config.steps_from == "places":  # d as the reward reads it
                m["steps/said_abs_err"] = steps_to_go_loss(model, obs, target[0]).metrics["steps/abs_err"]
            metrics.append((len(chunk), m))
        total = sum(n for n, _ in metrics)
        for key in metrics[0][1]:
            result[key] = sum(n * m[key] for n, m in metrics) / total
    model.train()
    return result
