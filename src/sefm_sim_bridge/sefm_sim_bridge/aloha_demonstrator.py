"""A scripted bimanual insertion demonstrator for ALOHA.

End-effector waypoints (after ACT's scripted insertion policy, at 10 Hz): the left arm
grasps the socket, the right arm the peg, both lift and meet above the table centre, and
the right arm pushes the peg into the socket. Inverse kinematics (damped least squares
on a kinematic copy of the model) turns each 10 Hz end-effector target into the joint
commands the robot is controlled with. Per-episode timing and waypoint noise give the
data spread.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import mujoco
import numpy as np

from .aloha import AlohaInsertionEnv

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
TCP_OFFSET = np.array([0.1347, 0.0, -0.00205])  # grasp point between the fingers, in the gripper_link frame
MEET = np.array([0.0, 0.5, 0.15])
REST_Z = {"peg": 0.01, "socket": 0.022}  # object centres once they lie on the table
OPEN, CLOSED = 1.0, 0.0


def _quat(axis, degrees: float) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_axisAngle2Quat(q, np.asarray(axis, dtype=np.float64), np.deg2rad(degrees))
    return q


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mulQuat(q, a, b)
    return q


# Grippers pitched 60 degrees down; the right arm faces the other way (-x).
PICK_QUAT = {"left": _quat([0, 1, 0], 60), "right": _mul(_quat([0, 1, 0], -60), _quat([0, 0, 1], 180))}


class ArmIK:
    """Joint angles of one arm that put its grasp point at a position with an orientation."""

    def __init__(self, model: mujoco.MjModel, arm: str, damping: float = 0.05) -> None:
        self.model, self.data = model, mujoco.MjData(model)
        self.body = model.body(f"vx300s_{arm}/gripper_link").id
        joints = [model.joint(f"vx300s_{arm}/{j}") for j in ARM_JOINTS]
        self.qadr = np.array([j.qposadr[0] for j in joints])
        self.dadr = np.array([j.dofadr[0] for j in joints])
        self.low, self.high = (np.array([j.range[i] for j in joints]) for i in (0, 1))
        self.damping = damping

    def pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp point and gripper orientation (w, x, y, z) at joint angles ``q``."""
        self.data.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        rot = self.data.xmat[self.body].reshape(3, 3)
        return self.data.xpos[self.body] + rot @ TCP_OFFSET, self.data.xquat[self.body].copy()

    def solve(self, q0: np.ndarray, pos: np.ndarray, quat: np.ndarray, iterations: int = 40) -> np.ndarray:
        q = np.asarray(q0, dtype=np.float64).copy()
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(iterations):
            tcp, current = self.pose(q)
            rot_err = np.zeros(3)
            mujoco.mju_subQuat(rot_err, quat, current)  # in the gripper frame
            err = np.concatenate([pos - tcp, self.data.xmat[self.body].reshape(3, 3) @ rot_err])
            if np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3:
                break
            mujoco.mj_jac(self.model, self.data, jacp, jacr, tcp, self.body)
            jac = np.vstack([jacp[:, self.dadr], jacr[:, self.dadr]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping**2 * np.eye(6), err)
            q = np.clip(q + dq, self.low, self.high)
        return q


@dataclass
class InsertionDemonstrator:
    """``act(env)`` returns the next chunk of ``chunk`` joint commands (10 Hz each)."""

    chunk: int = 5
    timing_spread: float = 0.1  # each episode's speed is scaled by up to +-10%
    waypoint_noise: float = 0.003  # m, per waypoint and axis
    insertion_depth: float = 0.06  # how far past ACT's meeting point the arms push (m)
    grasp_height: float = 0.01  # grasp point above the object's resting centre (m)
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._ik: dict[str, ArmIK] = {}
        self._plan: dict[str, list[tuple[float, np.ndarray, float]]] = {}
        self._t = 0

    def reset(self, seed: int | None = None) -> None:
        """Call after the env's reset; the plan is made from the scene at the first ``act``."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._plan = {}
        self._t = 0

    def _make_plan(self, env: AlohaInsertionEnv) -> None:
        model = env.physics.model.ptr
        if not self._ik or self._ik["left"].model is not model:
            self._ik = {arm: ArmIK(model, arm) for arm in ("left", "right")}
        objects = env.object_poses()
        scale = 1.0 + self.rng.uniform(-self.timing_spread, self.timing_spread)
        times = np.array([0, 24, 34, 40, 44, 57, 72, 80]) * scale
        push = self.insertion_depth
        # (step, grasp point, gripper) per arm; the right arm holds the peg slightly higher (ACT: 7 mm).
        targets = {
            "left": ("socket", np.array([-0.1, 0, 0]), np.array([-0.05 + push / 2, 0, 0])),
            "right": ("peg", np.array([0.1, 0, 0.00715]), np.array([0.05 - push / 2, 0, 0.00715])),
        }
        command = env.command
        for arm, (name, approach, insert) in targets.items():
            obj = objects[name][:3]
            q = command[:6] if arm == "left" else command[7:13]
            start, _ = self._ik[arm].pose(q)
            noise = lambda: self.rng.normal(0, self.waypoint_noise, 3)  # noqa: E731
            grasp = np.array([obj[0], obj[1], REST_Z[name] + self.grasp_height]) + noise()
            self._plan[arm] = [
                (times[0], start, CLOSED),
                (times[1], obj + np.array([0, 0, 0.08]) + noise(), OPEN),
                (times[2], grasp, OPEN),
                (times[3], grasp, CLOSED),
                (times[4], grasp, CLOSED),
                (times[5], MEET + approach + noise(), CLOSED),
                (times[6], MEET + insert, CLOSED),
                (times[7], MEET + insert, CLOSED),
            ]

    def _target(self, arm: str, t: float) -> tuple[np.ndarray, float]:
        plan = self._plan[arm]
        for (t0, p0, g0), (t1, p1, g1) in itertools.pairwise(plan):
            if t <= t1:
                a = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return p0 + a * (p1 - p0), g0 + a * (g1 - g0)
        return plan[-1][1], plan[-1][2]

    def act(self, env: AlohaInsertionEnv) -> np.ndarray:
        if not self._plan:
            self._make_plan(env)
        q = env.command
        chunk = []
        for _ in range(self.chunk):
            self._t += 1
            for arm, sl, grip in (("left", slice(0, 6), 6), ("right", slice(7, 13), 13)):
                pos, gripper = self._target(arm, self._t)
                q[sl] = self._ik[arm].solve(q[sl], pos, PICK_QUAT[arm])
                q[grip] = gripper
            chunk.append(q.copy())
        return np.stack(chunk)
