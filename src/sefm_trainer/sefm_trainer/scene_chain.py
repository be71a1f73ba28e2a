"""A reasoning chain's places asked on freshly rendered boards: Stage 1's ``scenes`` objective.

The 4-block chain reads its places on the 2,000 boards it was trained on far better than on new
ones: all three within a block width in 88% of steps against 72% (polished Stage 1, docs/results
session 15). It has learned those boards by heart, and practice, at a few dozen new boards a loop,
has not taught it to read others. The simulator renders a new board in 4 ms with every object's
place known (Stage 0's ``GroundingScenes``: the env's own seeded layouts, the effector anywhere), so
here every question is asked of a board nobody showed before, in the words and the chain the
policy acts with: an instruction naming two of its blocks (or, with one object, the object and a
region), answered by the places of the named block, its target and the effector. No robot action
and no demonstration: the frame is shown as its own previous frame, which the places do not need
(``reasoning_probe``: the place digits hold up with a still frame pair).

Most of the from-base Stage 1's greedy failures (57 of 100) are the effector shuttling 3-5 cm
beside the named block, the chain reading that block about 2 cm off across its push line, so
that it says "aligned" and pushes past (docs/results, session 33). Demonstrations show the
effector beside a block only behind it, pushing, and the env's layouts put it anywhere, so
seldom there. ``effector_near`` puts the effector beside the named block, at any angle, on that
share of boards."""

from __future__ import annotations

from typing import get_args

import numpy as np

from sefm_policy.prompts import Observation
from sefm_policy.tokenizers import GroundedActionTokenizer
from sefm_sim_bridge.grounding_scenes import GroundingScene, GroundingScenes
from sefm_sim_bridge.scene import X_RANGE, Y_RANGE

from .sft import SceneKind, ask

SCENE_KINDS = get_args(SceneKind)
NEAR_M = (0.04, 0.12)  # how far from the named block effector_near puts the effector


class SceneChains:
    """Batches of chain questions, ``per_scene`` to a board. Each board comes from its pick: even
    scene seeds for training, odd for validation (as Stage 0's probe), so the two never share one
    and a resumed run renders exactly the boards an uninterrupted one would."""

    def __init__(self, image_size: int, kind: str = "blocks4", per_scene: int = 2, effector_near: float = 0.0) -> None:
        if kind not in SCENE_KINDS:
            raise ValueError(f"scene_kind: {kind!r} is not one of {SCENE_KINDS}")
        if not 0 <= effector_near <= 1:
            raise ValueError(f"scene_effector_near: {effector_near} is not a share between 0 and 1")
        self.scenes = GroundingScenes((image_size, image_size))
        self.kind = kind
        self.per_scene = per_scene
        self.effector_near = effector_near

    def batch(
        self, tokenizer: GroundedActionTokenizer, held_out: int, picks: np.ndarray, kind: str | None = None
    ) -> tuple[list[Observation], np.ndarray]:
        """Observations and their chains' digits; ``kind``: another board kind than the default."""
        observations, places = self.questions(held_out, picks, kind)
        return observations, np.stack([tokenizer.encode(np.zeros(2), p) for p in places])

    def questions(
        self, held_out: int, picks: np.ndarray, kind: str | None = None
    ) -> tuple[list[Observation], np.ndarray]:
        """Observations and their chains' true places (B, 3, 2), unquantised: what a probe scores."""
        observations, places, _ = self.boards(held_out, picks, kind)
        return observations, places

    def boards(self, held_out: int, picks: np.ndarray, kind: str | None = None):
        """``questions`` and, per question, its board's ground truth: (objects by shown name, effector)."""
        kind = kind or self.kind
        if kind not in SCENE_KINDS:
            raise ValueError(f"scene_kind: {kind!r} is not one of {SCENE_KINDS}")
        observations, places, truth = [], [], []
        for first in range(0, len(picks), self.per_scene):
            scene, env, names = self.scenes.sample(kind, 2 * int(picks[first]) + held_out)
            rng = np.random.default_rng([int(picks[first]), 17])
            obj = None
            if self.effector_near:
                near = np.random.default_rng([int(picks[first]), 23])
                if near.random() < self.effector_near:
                    obj = sorted(scene.objects)[int(near.integers(len(scene.objects)))]
                    scene = self.beside(scene, env, names, obj, near)
            for _ in picks[first : first + self.per_scene]:
                instruction, where = ask(scene.objects, scene.effector, rng, to_block=kind != "banana", obj=obj)
                observations.append(Observation(images=(scene.image, scene.image), instruction=instruction))
                places.append(where)
                truth.append((scene.objects, scene.effector))
        return observations, np.stack(places), truth

    def beside(self, scene: GroundingScene, env, names: dict, obj: str, rng: np.random.Generator) -> GroundingScene:
        """``scene`` re-rendered with the effector NEAR_M from ``obj`` in a random direction, on the board."""
        r, angle = rng.uniform(*NEAR_M), rng.uniform(0, 2 * np.pi)
        xy = scene.objects[obj] + r * np.array([np.cos(angle), np.sin(angle)])
        return self.scenes.with_effector(scene.kind, env, names, np.clip(xy, *np.transpose([X_RANGE, Y_RANGE])))

    def close(self) -> None:
        self.scenes.close()
