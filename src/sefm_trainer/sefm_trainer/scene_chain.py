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
(``reasoning_probe``: the place digits hold up with a still frame pair)."""

from __future__ import annotations

from typing import get_args

import numpy as np

from sefm_policy.prompts import Observation
from sefm_policy.tokenizers import GroundedActionTokenizer
from sefm_sim_bridge.grounding_scenes import GroundingScenes

from .sft import SceneKind, ask

SCENE_KINDS = get_args(SceneKind)


class SceneChains:
    """Batches of chain questions, ``per_scene`` to a board. Each board comes from its pick: even
    scene seeds for training, odd for validation (as Stage 0's probe), so the two never share one
    and a resumed run renders exactly the boards an uninterrupted one would."""

    def __init__(self, image_size: int, kind: str = "blocks4", per_scene: int = 2) -> None:
        if kind not in SCENE_KINDS:
            raise ValueError(f"scene_kind: {kind!r} is not one of {SCENE_KINDS}")
        self.scenes = GroundingScenes((image_size, image_size))
        self.kind = kind
        self.per_scene = per_scene

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
            scene, _, _ = self.scenes.sample(kind, 2 * int(picks[first]) + held_out)
            rng = np.random.default_rng([int(picks[first]), 17])
            for _ in picks[first : first + self.per_scene]:
                instruction, where = ask(scene.objects, scene.effector, rng, to_block=kind != "banana")
                observations.append(Observation(images=(scene.image, scene.image), instruction=instruction))
                places.append(where)
                truth.append((scene.objects, scene.effector))
        return observations, np.stack(places), truth

    def close(self) -> None:
        self.scenes.close()
