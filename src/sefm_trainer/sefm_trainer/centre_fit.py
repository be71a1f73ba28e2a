"""The centre finder (``sefm_policy.object_centres``) fitted on rendered boards, for a chain to snap to.

Its questions are Stage 0's: boards of every kind rendered with every place known (even scene seeds
train, odd ones are held out), no actions. Demonstrations add the boards acting sees most and a
random layout seldom does: two blocks touching at the goal and the effector against a block. So
does a share of the rendered boards, re-rendered with the effector beside an object or with one
object moved against another. Only the finder trains; the chain it serves is left as it was.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from sefm_interfaces.typed_config import ConfigError, StrictModel
from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.object_centres import KINDS, centre_loss, centre_targets
from sefm_sim_bridge.grounding_scenes import GroundingScenes
from sefm_sim_bridge.scene import BLOCK_HALF, EFFECTOR_RADIUS, VIEW_HALF, X_RANGE, Y_RANGE, image_point

from .bag_reader import load_episodes

BOARD_KINDS = ("blocks8", "blocks8", "blocks4", "varied", "shapes", "banana")  # the 8-block board twice
TOUCHING_M = (2 * BLOCK_HALF + 0.002, 2 * BLOCK_HALF + 0.02)  # one object moved against another
BESIDE_M = (BLOCK_HALF + EFFECTOR_RADIUS + 0.002, 0.08)  # the effector beside an object
CM_PER_IMAGE = np.array(VIEW_HALF) * 2 * 100  # (column, row) image fractions -> cm on the board


class CentreFitConfig(StrictModel):
    """``sefm train centres``."""

    init: str = Field(..., description="a chain checkpoint (action_from: places) whose places will snap")
    out: str = Field(..., description="the checkpoint written: init's weights with snap_places and the fitted finder")
    boards: int = Field(4000, gt=0, description="rendered training boards")
    held_out_boards: int = Field(300, gt=0, description="rendered boards scored, none of them trained on")
    demonstrations: str | None = Field(
        None, description="an episode folder with recorded places (sefm datagen) whose frames also train"
    )
    demonstration_share: float = Field(0.2, gt=0, le=1, description="share of the folder's episodes used")
    finder_from: str | None = Field(
        None,
        description="a checkpoint whose fitted finder init takes instead of fitting one (steps unused): the finder "
        "reads the frame alone, so one fit serves a policy and its reward model",
    )
    steps: int = Field(2000, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    evals: int = Field(8, gt=0, description="held-out scores along the way")
    seed: int = 0


def board_frames(count: int, held_out: int, size: int) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """``count`` rendered boards (uint8 (N, S, S, 3)) and their centres by kind, as image fractions."""
    scenes = GroundingScenes((size, size))
    images, points = [], []
    try:
        for i in tqdm(range(count), desc="boards", unit="board", leave=False):
            kind = BOARD_KINDS[i % len(BOARD_KINDS)]
            scene, env, names = scenes.sample(kind, 2 * i + held_out)
            rng = np.random.default_rng([i, held_out, 29])
            objects = list(scene.objects)
            if scene.effector is not None and rng.random() < 0.5:
                xy = _free_spot(scene.objects, scene.objects[objects[rng.integers(len(objects))]], BESIDE_M, rng)
                if xy is not None:
                    scene = scenes.with_effector(scene.kind, env, names, xy)
            if len(objects) > 1 and rng.random() < 0.4:
                body = {shown: body for body, shown in names.items()}
                moving, anchor = rng.choice(len(objects), 2, replace=False)
                others = {k: v for k, v in scene.objects.items() if k != objects[moving]}
                if scene.effector is not None:
                    others["effector"] = scene.effector
                xy = _free_spot(others, scene.objects[objects[anchor]], TOUCHING_M, rng)
                if xy is not None:
                    scene = scenes.moved(scene.kind, env, names, body[objects[moving]], xy)
            images.append(scene.image)
            points.append(_centres(list(scene.objects.values()), scene.effector))
    finally:
        scenes.close()
    return np.stack(images), points


def _free_spot(taken: dict, anchor: np.ndarray, gap: tuple[float, float], rng: np.random.Generator):
    """A board point ``gap`` from ``anchor`` in a random direction that overlaps nothing else, or None."""
    for _ in range(20):
        r, angle = rng.uniform(*gap), rng.uniform(0, 2 * np.pi)
        xy = anchor + r * np.array([np.cos(angle), np.sin(angle)])
        inside = X_RANGE[0] <= xy[0] <= X_RANGE[1] and Y_RANGE[0] <= xy[1] <= Y_RANGE[1]
        if inside and all(np.linalg.norm(xy - np.asarray(p)) >= gap[0] - 1e-9 for p in taken.values()):
            return xy
    return None


def _centres(objects: list, effector) -> dict[str, np.ndarray]:
    on_board = [image_point(xy) for xy in objects]
    found = {"object": np.array([p for p in on_board if 0 <= p[0] <= 1 and 0 <= p[1] <= 1]).reshape(-1, 2)}
    found["effector"] = np.array([image_point(effector)]).reshape(-1, 2) if effector is not None else np.zeros((0, 2))
    return found


def demonstration_frames(
    folder: str, share: float, seed: int, size: int
) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """Every frame of a share of a folder's demonstrations at ``size`` px, with the places they recorded."""
    episodes = [e for e in load_episodes(folder, fraction=share, seed=seed).episodes if e.objects is not None]
    if not episodes:
        raise ConfigError(f"demonstrations: {folder} holds no episodes with recorded places (sefm datagen writes them)")
    images, points = [], []
    for episode in episodes:
        frames = episode.frames[episode.meta.cameras[0]]
        for t in range(len(frames)):
            effector = None if episode.effector is None else episode.effector[t]
            frame = frames[t]
            if frame.shape[:2] != (size, size):
                frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            images.append(frame)
            points.append(_centres([places[t] for places in episode.objects.values()], effector))
    return np.stack(images), points


def centre_errors(model, images: np.ndarray, points: list[dict[str, np.ndarray]], batch: int = 64) -> dict:
    """How far each true centre is from the nearest found one of its kind (cm on the board), and how
    many found centres are nowhere near a true one."""
    errors: dict[str, list[float]] = {kind: [] for kind in KINDS}
    spurious = found_total = 0
    for start in range(0, len(images), batch):
        pixels = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2).float() / 255
        for found, truth in zip(model.object_centres.centres(pixels), points[start : start + batch], strict=True):
            for kind in KINDS:
                seen, true = found[kind], truth[kind]
                found_total += len(seen)
                for xy in true:
                    gaps = np.linalg.norm((seen - xy) * CM_PER_IMAGE, axis=-1)
                    errors[kind].append(float(gaps.min()) if len(gaps) else np.inf)
                for xy in seen:
                    gaps = np.linalg.norm((true - xy) * CM_PER_IMAGE, axis=-1)
                    spurious += int(not len(gaps) or gaps.min() > BLOCK_HALF * 100)
    scores = {}
    for kind, gaps in errors.items():
        g = np.array(gaps)
        scores[kind] = {
            "centres": len(g),
            "within_0.5cm": round(float(np.mean(g <= 0.5)), 4) if len(g) else None,
            "within_1cm": round(float(np.mean(g <= 1.0)), 4) if len(g) else None,
            "median_cm": round(float(np.median(g)), 3) if len(g) else None,
        }
    scores["spurious_share"] = round(spurious / max(found_total, 1), 4)
    return scores


def fit_object_centres(cfg: CentreFitConfig) -> dict:
    """Fit, save ``out`` and return the held-out curve."""
    torch.manual_seed(cfg.seed)
    model = load_checkpoint(cfg.init)
    if model.config.action_from != "places":
        raise ConfigError(f"init {cfg.init}: snapping needs a chain of places (action_from: places)")
    model = model.reconfigured(snap_places=True).eval()
    started = time.time()
    held_images, held_points = board_frames(cfg.held_out_boards, 1, model.image_size)
    if cfg.finder_from:
        donor = load_checkpoint(cfg.finder_from)
        if donor.object_centres is None or donor.image_size != model.image_size:
            raise ConfigError(f"finder_from {cfg.finder_from}: has no centre finder for {model.image_size} px frames")
        model.object_centres.load_state_dict(donor.object_centres.state_dict())
        summary = {
            "init": cfg.init,
            "finder_from": cfg.finder_from,
            "held_out": [centre_errors(model, held_images, held_points)],
        }
        save_checkpoint(model, cfg.out, metadata={"source": "centre_fit", "config": cfg.model_dump(), **summary})
        return summary
    images, points = board_frames(cfg.boards, 0, model.image_size)
    if cfg.demonstrations:
        more, more_points = demonstration_frames(
            cfg.demonstrations, cfg.demonstration_share, cfg.seed, model.image_size
        )
        images, points = np.concatenate([images, more]), points + more_points
    finder = model.object_centres.train()
    optimizer = torch.optim.AdamW(finder.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(cfg.seed)
    every, curve = max(cfg.steps // cfg.evals, 1), []
    bar = tqdm(range(1, cfg.steps + 1), desc="centres", unit="step")
    for step in bar:
        picks = torch.randint(len(images), (cfg.batch_size,), generator=generator).numpy()
        pixels = torch.from_numpy(images[picks]).permute(0, 3, 1, 2).float() / 255
        heat, offset = finder(pixels)
        loss = centre_loss(heat, offset, centre_targets([points[i] for i in picks], tuple(heat.shape[-2:])))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(finder.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % every == 0 or step == cfg.steps:
            finder.eval()
            curve.append(
                {"step": step, "loss": round(loss.item(), 4), **centre_errors(model, held_images, held_points)}
            )
            finder.train()
    summary = {
        "init": cfg.init,
        "frames": len(images),
        "held_out_boards": len(held_images),
        "minutes": round((time.time() - started) / 60, 1),
        "held_out": curve,
    }
    save_checkpoint(model.eval(), cfg.out, metadata={"source": "centre_fit", "config": cfg.model_dump(), **summary})
    return summary
