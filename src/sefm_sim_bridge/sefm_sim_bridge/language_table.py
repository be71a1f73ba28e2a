"""Simulated LanguageTable and BananaTable (MuJoCo, gymnasium API).

10 Hz control of a round end effector by 2-D position deltas, clipped to
[-0.1, 0.1] m per axis and to the workspace; the effector moves kinematically along
the segment over the 20 physics steps of a control period, so it pushes rather than
teleports. Fully deterministic from the reset seed.
"""

from __future__ import annotations

import os
from typing import ClassVar

import cv2
import gymnasium as gym
import numpy as np

from .gl import ensure_offscreen_gl
from .scene import (
    BLOCK_HALF,
    BOARD_MARGIN,
    EFFECTOR_RADIUS,
    FOUR_BLOCKS,
    OFF_BOARD,
    VIEW_HALF,
    X_RANGE,
    Y_RANGE,
    build_mjcf,
)
from .tasks import FAMILIES, Task, sample_task

ensure_offscreen_gl()
import mujoco  # noqa: E402  (MUJOCO_GL must be set first)

CONTROL_HZ = 10
PHYSICS_STEPS = 20  # x 0.005 s = one 0.1 s control period
MAX_DELTA = 0.1
DEFAULT_IMAGE_SIZE = (96, 96)  # (height, width): the tiny EFM's input, no resize needed
MIN_SPACING = 0.075
EFFECTOR_LOW = np.array([X_RANGE[0], Y_RANGE[0]]) - BOARD_MARGIN + EFFECTOR_RADIUS
EFFECTOR_HIGH = np.array([X_RANGE[1], Y_RANGE[1]]) + BOARD_MARGIN - EFFECTOR_RADIUS


class LanguageTableEnv(gym.Env):
    """Observation: ``rgb`` (current frame), ``prev_rgb`` (the frame before), ``effector`` (x, y)
    and ``instruction``. Reward: 1.0 on ground-truth success (evaluation only; the
    self-improvement loop uses the learned detector). ``task_family``: block2block,
    block2location or banana (BananaTable)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(
        self,
        task_family: str = "block2block",
        image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        max_steps: int = 100,
        render_images: bool = True,
    ) -> None:
        if task_family not in FAMILIES:
            raise ValueError(f"unknown task_family {task_family!r}; expected one of {FAMILIES}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.task_family = task_family
        self.image_size = tuple(int(s) for s in image_size)
        self.max_steps = max_steps
        self.render_mode = "rgb_array"
        xml, objects = build_mjcf("banana" if task_family == "banana" else "blocks")
        # The 4-block set keeps the other four bodies in the model, parked off the board.
        self.unused = [o for o in objects if task_family == "block2block4" and tuple(o.name.split()) not in FOUR_BLOCKS]
        self.objects = [o for o in objects if o not in self.unused]
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._effector_mocap = self.model.body("effector").mocapid[0]
        self._qpos = {o.name: self.model.joint(self.model.body(o.body).jntadr[0]).qposadr[0] for o in objects}
        self._body = {o.name: self.model.body(o.body).id for o in self.objects}
        self._renderer = None
        self._render_images = render_images
        h, w = self.image_size
        image = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(
            {
                "rgb": image,
                "prev_rgb": image,
                "effector": gym.spaces.Box(-1.0, 1.0, (2,), np.float64),
                "instruction": gym.spaces.Text(256, charset="abcdefghijklmnopqrstuvwxyz ,.'-"),
            }
        )
        self.action_space = gym.spaces.Box(-MAX_DELTA, MAX_DELTA, (2,), np.float64)
        self.task: Task | None = None
        self._steps = 0
        self._prev = self._frame = None

    # ----- state ------------------------------------------------------------------------

    @property
    def effector(self) -> np.ndarray:
        return self.data.mocap_pos[self._effector_mocap, :2].copy()

    def object_positions(self) -> dict[str, np.ndarray]:
        return {name: self.data.xpos[b, :2].copy() for name, b in self._body.items()}

    def success(self) -> bool:
        return self.task is not None and self.task.success(self.object_positions())

    # ----- gym API ------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        inset = BLOCK_HALF
        placed: list[np.ndarray] = []

        def free_spot() -> np.ndarray:
            for _ in range(1000):
                p = rng.uniform([X_RANGE[0] + inset, Y_RANGE[0] + inset], [X_RANGE[1] - inset, Y_RANGE[1] - inset])
                if all(np.linalg.norm(p - q) >= MIN_SPACING for q in placed):
                    placed.append(p)
                    return p
            raise RuntimeError("could not place objects without overlap")

        self.data.mocap_pos[self._effector_mocap, :2] = free_spot()
        for o in self.unused:
            self.data.qpos[self._qpos[o.name] : self._qpos[o.name] + 3] = OFF_BOARD
        for o in self.objects:
            adr = self._qpos[o.name]
            xy, yaw = free_spot(), rng.uniform(-np.pi, np.pi)
            self.data.qpos[adr : adr + 3] = [xy[0], xy[1], self.data.qpos[adr + 2]]
            self.data.qpos[adr + 3 : adr + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        mujoco.mj_forward(self.model, self.data)
        for _ in range(5):  # let objects settle on the board
            mujoco.mj_step(self.model, self.data)
        self.task = sample_task(self.task_family, self.object_positions(), rng)
        self._steps = 0
        self._frame = self._render()
        self._prev = self._frame
        return self._observation(), self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(2)
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a}")
        a = np.clip(a, -MAX_DELTA, MAX_DELTA)
        start = self.effector
        end = np.clip(start + a, EFFECTOR_LOW, EFFECTOR_HIGH)
        for k in range(1, PHYSICS_STEPS + 1):
            self.data.mocap_pos[self._effector_mocap, :2] = start + (end - start) * k / PHYSICS_STEPS
            mujoco.mj_step(self.model, self.data)
        self._steps += 1
        self._prev, self._frame = self._frame, self._render()
        success = self.success()
        truncated = not success and self._steps >= self.max_steps
        return self._observation(), float(success), success, truncated, self._info()

    def render(self):
        return self._frame

    def render_now(self) -> np.ndarray:
        """A frame of the current state after changing it from outside (Stage 0's varied scenes)."""
        mujoco.mj_forward(self.model, self.data)
        return self._render()

    def render_camera(self, height: int, width: int) -> np.ndarray:
        """A frame at another size (figures, benchmarks), leaving the observation size alone."""
        renderer = mujoco.Renderer(self.model, *_board_shape(width))
        try:
            renderer.update_scene(self.data, camera="front")
            return _stretch(renderer.render(), height, width)
        finally:
            renderer.close()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ----- helpers ----------------------------------------------------------------------

    def _render(self) -> np.ndarray:
        if not self._render_images:
            return np.zeros((*self.image_size, 3), np.uint8)
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, *_board_shape(self.image_size[1]))
            except Exception as err:
                raise RuntimeError(
                    f"MuJoCo offscreen rendering failed (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}): {err}. "
                    "MuJoCo fixes its GL backend when first imported: set MUJOCO_GL=egl or osmesa, or import "
                    "sefm_sim_bridge before mujoco"
                ) from err
        self._renderer.update_scene(self.data, camera="front")
        return _stretch(self._renderer.render(), *self.image_size)

    def _observation(self) -> dict:
        return {
            "rgb": self._frame,
            "prev_rgb": self._prev,
            "effector": self.effector,
            "instruction": self.task.instruction,
        }

    def _info(self) -> dict:
        return {
            "success": self.success(),
            "task": self.task,
            "objects": self.object_positions(),
            "steps": self._steps,
        }


def _board_shape(width: int) -> tuple[int, int]:
    """(height, width) of a render at the board's own aspect: square pixels, nothing but board."""
    return max(1, round(width * VIEW_HALF[1] / VIEW_HALF[0])), width


def _stretch(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame.copy()
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
