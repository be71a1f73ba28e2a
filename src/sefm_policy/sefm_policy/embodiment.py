"""Per-robot token and image layout: which tokenizers (``tokenizers``) and cameras each robot has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .config import EFMConfig
from .prompts import Observation
from .tokenizers import (
    GroundedActionTokenizer,
    JointTokenizer,
    PlaceTokenizer,
    SignMagnitudeActionTokenizer,
    UniformBins,
    aloha_steps,
    language_table_action,
    language_table_steps,
)


@dataclass(frozen=True)
class Embodiment:
    name: str
    cameras: tuple[str, ...]
    action: SignMagnitudeActionTokenizer | GroundedActionTokenizer | JointTokenizer
    steps: UniformBins
    state: JointTokenizer | None = None

    @property
    def num_model_images(self) -> int:
        return 2

    @property
    def reasoning_slots(self) -> int:
        """Slots of the act answer before the action's own: a reasoning chain's places."""
        if isinstance(self.action, GroundedActionTokenizer):
            return len(self.action.slot_sizes) - len(self.action.action.slot_sizes)
        return 0

    def explored_slots(self, chain: bool, digits: str = "coarse") -> np.ndarray:
        """Which slots practice samples (and REINFORCE weighs): the action's own, and with
        ``chain`` each place's ``digits`` too (``EFMConfig.practice_digits``): its coarse digits
        (which patch) or its finer ones (where in the patch)."""
        explored = np.zeros(len(self.action.slot_sizes), dtype=bool)
        explored[self.reasoning_slots :] = True
        if chain and self.reasoning_slots:
            coarse = list(self.action.coarse_place_slots)
            if digits == "coarse":
                explored[coarse] = True
            else:
                explored[: self.reasoning_slots] = True
                explored[coarse] = False
        return explored

    def command_limits(self, planar_limit: float) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of each value of a decoded, flattened action: +-planar_limit for end-effector
        deltas; the joint ranges the model was trained with (once per chunk step) for joints."""
        if isinstance(self.action, JointTokenizer):
            low = np.tile(np.asarray(self.action.low, dtype=np.float64), self.action.chunk)
            high = np.tile(np.asarray(self.action.high, dtype=np.float64), self.action.chunk)
            return low, high
        limit = min(planar_limit, self.action.limit)
        return np.full(self.action.dims, -limit), np.full(self.action.dims, limit)

    def model_images(self, obs: Observation) -> list[np.ndarray]:
        """Camera frames -> the two images the model sees."""
        if len(obs.images) != len(self.cameras):
            raise ValueError(
                f"{self.name} observations carry {len(self.cameras)} images {self.cameras}, got {len(obs.images)}"
            )
        frames = [_check_frame(im, cam) for im, cam in zip(obs.images, self.cameras, strict=True)]
        if len(frames) == 2:
            return frames
        return [_stack(frames[0], frames[1]), _stack(frames[2], frames[3])]


def observation_at(
    embodiment: str, frames: Sequence, t: int, instruction: str = "", states: Sequence | None = None
) -> Observation:
    """What the model sees at step ``t`` of an episode. LanguageTable: its camera at t and t-1
    (``frames[t]`` one image); ALOHA: the four cameras at t (``frames[t]`` a tuple) and the joints."""
    if embodiment == "aloha":
        if states is None:
            raise ValueError("ALOHA observations need the joint states")
        return Observation(images=tuple(frames[t]), instruction=instruction, state=np.asarray(states[t]))
    return Observation(images=(frames[t], frames[max(t - 1, 0)]), instruction=instruction)


def _check_frame(image: np.ndarray, camera: str) -> np.ndarray:
    im = np.asarray(image)
    if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
        raise ValueError(f"camera {camera!r}: expected a uint8 HxWx3 RGB frame, got {im.dtype} {im.shape}")
    return im


def _stack(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Stack two camera frames vertically, resizing the lower one to the upper one's width."""
    if bottom.shape[1] != top.shape[1]:
        h = round(bottom.shape[0] * top.shape[1] / bottom.shape[1])
        bottom = cv2.resize(bottom, (top.shape[1], h), interpolation=cv2.INTER_AREA)
    return np.concatenate([top, bottom], axis=0)


def embodiment_for(config: EFMConfig) -> Embodiment:
    if config.embodiment == "language_table":
        return Embodiment(
            name="language_table",
            cameras=("current", "previous"),
            action=GroundedActionTokenizer(language_table_action(), place=PlaceTokenizer(tuple(config.place_radices)))
            if config.reason
            else language_table_action(),
            steps=language_table_steps(config.steps_per_bin),
        )
    low, high = config.joint_stats()
    return Embodiment(
        name="aloha",
        cameras=("top", "angle", "left_wrist", "right_wrist"),
        action=JointTokenizer(low, high, bins=config.joint_bins, chunk=config.action_chunk),
        steps=aloha_steps(),
        state=JointTokenizer(low, high, bins=config.joint_bins, chunk=1),
    )
