"""Varied board scenes with ground truth, for Stage 0's grounding pretraining (no robot actions).

Six kinds: *single* (one block or the banana alone, no effector: the first rung of the
curriculum, since the tiny model learns to find one thing long before it tells two apart),
LanguageTable's 8 blocks, its 4-block set (one colour each), *varied* scenes (2-8 blocks
recoloured from a wider palette, so colour words are not tied to shapes as in the 8-block set),
BananaTable, and *shapes* (2-4 blocks of one palette colour, each a different shape: only the
shape word tells them apart, the half of an 8-block name a base learns last). Layouts come from
the env's own seeded reset, with the effector anywhere on the board; recolouring and hiding
change the MuJoCo model in place and are undone for the next scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .language_table import LanguageTableEnv
from .scene import BLOCKS, FOUR_BLOCKS, OFF_BOARD, SHAPES

PALETTE = {
    "red": (0.86, 0.15, 0.15),
    "blue": (0.15, 0.35, 0.90),
    "green": (0.15, 0.70, 0.25),
    "yellow": (0.95, 0.80, 0.10),
    "orange": (0.95, 0.50, 0.10),
    "purple": (0.55, 0.20, 0.75),
    "pink": (0.98, 0.55, 0.75),
    "cyan": (0.10, 0.80, 0.85),
    "brown": (0.50, 0.30, 0.12),
    "grey": (0.55, 0.55, 0.55),
}
SCENE_KINDS = ("single", "blocks8", "blocks4", "varied", "banana", "shapes")


@dataclass(frozen=True)
class GroundingScene:
    """One rendered board: ``objects`` maps each visible object's name to its (x, y) in metres."""

    kind: str
    image: np.ndarray
    objects: dict[str, np.ndarray]
    effector: np.ndarray | None  # None: parked off the board (single-object scenes)


class GroundingScenes:
    """Renders scenes of every kind from one seed each; ``moved`` re-renders a scene with one
    object displaced (the "after" frame of instruction prediction)."""

    def __init__(self, image_size: tuple[int, int] = (96, 96)) -> None:
        self.blocks = LanguageTableEnv("block2block", image_size=image_size)
        self.banana = LanguageTableEnv("banana", image_size=image_size)
        model = self.blocks.model
        self._rgba = model.geom_rgba.copy()
        self._geoms = {}
        for name, body in self.blocks._body.items():
            start = model.body_geomadr[body]
            self._geoms[name] = range(start, start + model.body_geomnum[body])

    def sample(self, kind: str, seed: int) -> tuple[GroundingScene, LanguageTableEnv, dict[str, str]]:
        """The scene, the env holding it, and body name -> shown name for its visible objects."""
        if kind not in SCENE_KINDS:
            raise ValueError(f"unknown scene kind {kind!r}; expected one of {SCENE_KINDS}")
        rng = np.random.default_rng([seed, 11])
        alone = kind == "single"
        if alone:
            kind = "banana" if rng.random() < 1 / 9 else "blocks1"
        env = self.banana if kind == "banana" else self.blocks
        env.reset(seed=seed)
        if alone:
            env.data.mocap_pos[env._effector_mocap, :2] = OFF_BOARD[:2]
        if kind == "banana":
            names = {"banana": "banana"}
        else:
            self.blocks.model.geom_rgba[:] = self._rgba
            blocks = [f"{c} {s}" for c, s in BLOCKS]
            if kind == "blocks8":
                names = {b: b for b in blocks}
            elif kind == "blocks1":
                one = blocks[int(rng.integers(len(blocks)))]
                names = {one: one}
            elif kind == "blocks4":
                names = {f"{c} {s}": f"{c} {s}" for c, s in FOUR_BLOCKS}
            elif kind == "shapes":
                names = self._one_colour(blocks, rng)
            else:
                names = self._recolour(blocks, rng)
            for block in blocks:
                if block not in names:
                    adr = env._qpos[block]
                    env.data.qpos[adr : adr + 3] = OFF_BOARD
        return self._scene("single" if alone else kind, env, names), env, names

    def moved(self, kind: str, env: LanguageTableEnv, names: dict[str, str], body: str, xy) -> GroundingScene:
        """The scene with ``body`` at ``xy``; the env is put back as it was."""
        adr = env._qpos[body]
        before = env.data.qpos[adr : adr + 2].copy()
        env.data.qpos[adr : adr + 2] = xy
        try:
            return self._scene(kind, env, names)
        finally:
            env.data.qpos[adr : adr + 2] = before
            env.render_now()

    def with_effector(self, kind: str, env: LanguageTableEnv, names: dict[str, str], xy) -> GroundingScene:
        """The scene with the effector at ``xy`` (a board where it stands beside a block, as practice
        leaves it; the env's own layouts put it anywhere, so seldom there)."""
        env.data.mocap_pos[env._effector_mocap, :2] = xy
        return self._scene(kind, env, names)

    def _recolour(self, blocks: list[str], rng: np.random.Generator) -> dict[str, str]:
        """2-8 blocks in palette colours, no two with the same colour and shape."""
        count = int(rng.integers(2, len(blocks) + 1))
        chosen = [blocks[i] for i in rng.permutation(len(blocks))[:count]]
        names, used = {}, set()
        colours = list(PALETTE)
        for block in chosen:
            shape = block.split()[1]
            free = [c for c in colours if (c, shape) not in used]
            colour = free[int(rng.integers(len(free)))]
            used.add((colour, shape))
            names[block] = f"{colour} {shape}"
            for g in self._geoms[block]:
                self.blocks.model.geom_rgba[g, :3] = PALETTE[colour]
        return names

    def _one_colour(self, blocks: list[str], rng: np.random.Generator) -> dict[str, str]:
        """2-4 blocks of different shapes, all in one palette colour."""
        colour = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        shapes = rng.permutation(SHAPES)[: int(rng.integers(2, len(SHAPES) + 1))]
        names = {}
        for shape in shapes:
            block = rng.choice([b for b in blocks if b.split()[1] == shape])
            names[str(block)] = f"{colour} {shape}"
            for g in self._geoms[block]:
                self.blocks.model.geom_rgba[g, :3] = PALETTE[colour]
        return names

    @staticmethod
    def _scene(kind: str, env: LanguageTableEnv, names: dict[str, str]) -> GroundingScene:
        image = env.render_now()
        positions = env.object_positions()
        effector = None if kind == "single" else env.effector
        return GroundingScene(kind, image, {names[b]: positions[b] for b in names}, effector)

    def close(self) -> None:
        self.blocks.close()
        self.banana.close()
