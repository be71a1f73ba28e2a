"""A scripted pushing demonstrator for LanguageTable / BananaTable.

Get behind the object on the line to its goal (going around it, not through it), push
along that line while steering the contact point to keep the object on it, and go
back behind it when it drifts off. Gaussian action noise and a per-episode speed give
the data the spread of human teleoperation rather than one perfect path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .language_table import MAX_DELTA, LanguageTableEnv
from .scene import BLOCK_HALF, EFFECTOR_RADIUS


@dataclass
class PushDemonstrator:
    noise_std: float = 0.004  # m per step, on each axis
    push_speed: tuple[float, float] = (0.02, 0.035)  # m per step, drawn per episode
    approach_speed: float = 0.06
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._speed = float(np.mean(self.push_speed))
        self._pushing = False
        self._back_off_speed: float | None = None

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._speed = float(self.rng.uniform(*self.push_speed))
        self._pushing = False
        self._back_off_speed = None

    def act(self, env: LanguageTableEnv) -> np.ndarray:
        positions = env.object_positions()
        obj, goal, e = positions[env.task.obj], env.task.goal_point(positions), env.effector
        clearance = self._radius(env) + EFFECTOR_RADIUS + 0.006
        to_goal = goal - obj
        dist = float(np.linalg.norm(to_goal))
        u = to_goal / max(dist, 1e-9)
        behind = obj - u * clearance
        rel = e - obj
        along = float(rel @ u)
        lateral = rel - along * u
        off_line = float(np.linalg.norm(lateral))
        # Start pushing from behind the object; keep pushing while still behind its centre (a
        # concave object like the banana is touched only once the effector is well inside its hull).
        if self._pushing:
            self._pushing = along < 0 and off_line < 0.5 * clearance
        else:
            self._pushing = along < -0.5 * clearance and off_line < 0.35 * clearance
        if self._pushing:
            # Pushing: advance along the line, steering so the object's offset from it is cancelled.
            target = e + u * max(min(dist, self._speed), 0.01) - 0.5 * lateral
            delta = target - e
            step = min(float(np.linalg.norm(delta)), self._speed + 0.01)
        else:
            target = self._approach_waypoint(e, obj, behind, u, clearance)
            delta = target - e
            step = min(float(np.linalg.norm(delta)), self.approach_speed)
        action = delta / max(float(np.linalg.norm(delta)), 1e-9) * step
        action = action + self.rng.normal(0.0, self.noise_std, 2)
        return np.clip(action, -MAX_DELTA, MAX_DELTA)

    def back_off(self, env: LanguageTableEnv) -> np.ndarray:
        """A step straight away from the object it pushed, at a speed drawn on the first call of an
        episode (from still to a push's pace), so that a demonstration can go on past its goal
        without undoing it. Drawn late, it leaves the steps before the goal as they were."""
        if self._back_off_speed is None:
            self._back_off_speed = float(self.rng.uniform(0.0, self.push_speed[1]))
        away = env.effector - env.object_positions()[env.task.obj]
        action = away / max(float(np.linalg.norm(away)), 1e-9) * self._back_off_speed
        return np.clip(action + self.rng.normal(0.0, self.noise_std, 2), -MAX_DELTA, MAX_DELTA)

    @staticmethod
    def _radius(env: LanguageTableEnv) -> float:
        return 0.06 if env.task.obj == "banana" else BLOCK_HALF * 1.2

    @staticmethod
    def _approach_waypoint(e, obj, behind, u, clearance) -> np.ndarray:
        """Straight to the push point unless that path crosses the object: then orbit around it."""
        seg = behind - e
        t = np.clip(float((obj - e) @ seg) / max(float(seg @ seg), 1e-12), 0.0, 1.0)
        if float(np.linalg.norm(e + t * seg - obj)) > clearance * 1.1:
            return behind
        rel = e - obj
        angle = np.arctan2(rel[1], rel[0])
        diff = (np.arctan2(-u[1], -u[0]) - angle + np.pi) % (2 * np.pi) - np.pi
        angle += np.sign(diff) * min(abs(diff), 0.9)
        return obj + 1.4 * clearance * np.array([np.cos(angle), np.sin(angle)])
