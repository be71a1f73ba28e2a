"""Simulated bimanual ALOHA peg insertion: gym-aloha's MuJoCo model and task at 10 Hz.

gym-aloha's own env renders three 480x640 cameras at every 50 Hz step (130-190 ms a step
here); this one keeps its physics, reset poses, gripper normalisation and reward, runs each
10 Hz joint-position command over five 50 Hz steps (interpolating from the last command,
as a teleoperated ALOHA streams it), executes a whole action chunk per ``step``, and
renders only the four cameras the model sees, small, without shadows or reflections.
"""

from __future__ import annotations

import os
from typing import ClassVar

import gymnasium as gym
import numpy as np

from .gl import ensure_offscreen_gl

ensure_offscreen_gl()
import mujoco  # noqa: E402  (MUJOCO_GL must be set first)
from dm_control import mujoco as dm_mujoco  # noqa: E402
from gym_aloha.constants import ASSETS_DIR, DT, JOINTS, START_ARM_POSE, normalize_puppet_gripper_position  # noqa: E402
from gym_aloha.tasks.sim import BOX_POSE, InsertionTask  # noqa: E402
from gym_aloha.utils import sample_insertion_pose  # noqa: E402

CONTROL_HZ = 10
ENV_HZ = round(1 / DT)  # gym-aloha's 50 Hz step
SUBSTEPS = ENV_HZ // CONTROL_HZ  # 50 Hz steps per 10 Hz command
CAMERAS = ("top", "angle", "left_wrist", "right_wrist")  # model images: [top; angle], [left; right wrist]
DEFAULT_CAMERA_SIZE = (32, 64)  # (height, width): two stacked make one 64x64 model image
INSERTED = 4  # gym-aloha's reward for the peg touching the socket's pin: full insertion
INSTRUCTION = "insert the peg into the socket"
JOINT_NAMES = tuple(JOINTS)
# The 14 values of a command and a state: 6 arm joints (rad) and a normalised gripper (0 closed, 1 open), per arm.
_START_GRIPPER = normalize_puppet_gripper_position(START_ARM_POSE[6])
START_COMMAND = np.array([*START_ARM_POSE[:6], _START_GRIPPER, *START_ARM_POSE[8:14], _START_GRIPPER])


class AlohaInsertionEnv(gym.Env):
    """Observation: ``images`` (camera -> HxWx3 uint8), ``qpos`` (the 14 joint values) and
    ``instruction``. Action: a chunk of k x 14 joint-position commands (or one 14-vector),
    each held for one 10 Hz period. Reward: gym-aloha's stage reward (4 = inserted, the
    ground truth; the self-improvement loop uses the learned detector)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    joint_names = JOINT_NAMES

    def __init__(
        self,
        camera_size: tuple[int, int] = DEFAULT_CAMERA_SIZE,
        max_steps: int = 30,
        render_images: bool = True,
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.camera_size = tuple(int(s) for s in camera_size)
        self.max_steps = max_steps
        self.render_mode = "rgb_array"
        self.task_family = "insertion"
        self.physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / "bimanual_viperx_insertion.xml"))
        self.task = InsertionTask()
        self._substeps = round(DT / self.physics.model.opt.timestep)
        self._render_images = render_images
        self._renderer = None
        self._command = START_COMMAND.copy()
        self._steps = 0
        self._best_reward = 0
        h, w = self.camera_size
        image = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(
            {
                "images": gym.spaces.Dict({cam: image for cam in CAMERAS}),
                "qpos": gym.spaces.Box(-np.pi, np.pi, (len(JOINT_NAMES),), np.float64),
                "instruction": gym.spaces.Text(64, charset="abcdefghijklmnopqrstuvwxyz "),
            }
        )
        self.action_space = gym.spaces.Box(-np.pi, np.pi, (len(JOINT_NAMES),), np.float64)

    # ----- state ------------------------------------------------------------------------

    @property
    def qpos(self) -> np.ndarray:
        return self.task.get_qpos(self.physics)

    @property
    def command(self) -> np.ndarray:
        """The last joint-position command (what the arms are being driven to)."""
        return self._command.copy()

    def object_poses(self) -> dict[str, np.ndarray]:
        """Peg and socket: position (3) and quaternion (4) each."""
        state = self.task.get_env_state(self.physics)
        return {"peg": state[:7].copy(), "socket": state[7:14].copy()}

    def success(self) -> bool:
        """Full insertion at any moment of the episode (gym-aloha ends its episodes there too)."""
        return self._best_reward >= INSERTED

    # ----- gym API ------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # gym-aloha's reset reads the object poses from this module-level slot.
        BOX_POSE[0] = np.concatenate(sample_insertion_pose(seed))
        self.task.initialize_episode(self.physics)
        self._command = START_COMMAND.copy()
        self._steps = 0
        self._best_reward = 0
        return self._observation(), self._info(0)

    def step(self, action):
        chunk = np.asarray(action, dtype=np.float64).reshape(-1, len(JOINT_NAMES))
        if not np.isfinite(chunk).all():
            raise ValueError("joint commands must be finite")
        reward = 0
        for target in chunk:
            start = self._command
            for k in range(1, SUBSTEPS + 1):
                self.task.before_step(start + (target - start) * k / SUBSTEPS, self.physics)
                self.physics.step(self._substeps)
                reward = self.task.get_reward(self.physics)
                self._best_reward = max(self._best_reward, reward)
            self._command = target.copy()
        self._steps += 1
        success = self.success()
        truncated = not success and self._steps >= self.max_steps
        return self._observation(), float(reward), success, truncated, self._info(reward)

    def render(self):
        return self.render_cameras()["top"]

    def render_cameras(self, size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """Every camera at ``size`` (default: the observation size)."""
        if size is not None and tuple(size) != self.camera_size:
            renderer = _fast_renderer(self.physics, *size)
            try:
                return _render_all(renderer, self.physics)
            finally:
                renderer.close()
        if not self._render_images:
            return {cam: np.zeros((*self.camera_size, 3), np.uint8) for cam in CAMERAS}
        if self._renderer is None:
            try:
                self._renderer = _fast_renderer(self.physics, *self.camera_size)
            except Exception as err:
                raise RuntimeError(
                    f"MuJoCo offscreen rendering failed (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}): {err}"
                ) from err
        return _render_all(self._renderer, self.physics)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ----- helpers ----------------------------------------------------------------------

    def _observation(self) -> dict:
        return {"images": self.render_cameras(), "qpos": self.qpos, "instruction": INSTRUCTION}

    def _info(self, reward: float) -> dict:
        return {"success": self.success(), "reward": reward, "objects": self.object_poses(), "steps": self._steps}


def _fast_renderer(physics, height: int, width: int) -> mujoco.Renderer:
    """A renderer without shadows, reflections or multisampling: a fraction of the default cost."""
    physics.model.vis.quality.offsamples = 0
    renderer = mujoco.Renderer(physics.model.ptr, height, width)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return renderer


def _render_all(renderer: mujoco.Renderer, physics) -> dict[str, np.ndarray]:
    frames = {}
    for cam in CAMERAS:
        renderer.update_scene(physics.data.ptr, camera=cam)
        frames[cam] = renderer.render().copy()
    return frames
