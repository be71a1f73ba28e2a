"""Task families, instruction templates and ground-truth success (evaluation and demos only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import BLOCK_HALF, X_RANGE, Y_RANGE

VERBS = ("push", "move", "slide", "put")
PREPOSITIONS = ("to", "towards", "close to", "next to")
BLOCK2BLOCK_DISTANCE = 0.05  # start block within this of the target block (paper: Block2Block)
# block2block4: LanguageTable's 4-block set (one block per colour), the rung below the 8 blocks.
FAMILIES = ("block2block", "block2block4", "block2location", "banana")

# The nine regions of the board, a 3×3 grid; rows from the far ("top") edge of the image.
LOCATIONS = {
    "top left": (0, 0),
    "top center": (0, 1),
    "top right": (0, 2),
    "left": (1, 0),
    "center": (1, 1),
    "right": (1, 2),
    "bottom left": (2, 0),
    "bottom": (2, 1),
    "bottom right": (2, 2),
}


def region_bounds(location: str) -> tuple[float, float, float, float]:
    row, col = LOCATIONS[location]
    w = (X_RANGE[1] - X_RANGE[0]) / 3
    h = (Y_RANGE[1] - Y_RANGE[0]) / 3
    x0 = X_RANGE[0] + col * w
    y1 = Y_RANGE[1] - row * h
    return x0, x0 + w, y1 - h, y1


def region_centre(location: str) -> np.ndarray:
    x0, x1, y0, y1 = region_bounds(location)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2])


def location_of(xy: np.ndarray) -> str:
    for name in LOCATIONS:
        x0, x1, y0, y1 = region_bounds(name)
        if x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1:
            return name
    return min(LOCATIONS, key=lambda n: float(np.linalg.norm(region_centre(n) - xy)))


@dataclass(frozen=True)
class Task:
    family: str
    instruction: str
    obj: str  # the object to move ("red star", "banana")
    target_obj: str | None = None  # Block2Block
    location: str | None = None  # location tasks

    def goal_point(self, positions: dict[str, np.ndarray]) -> np.ndarray:
        """Where the object should end up: against the target block (aiming slightly into it so a
        push ends in contact, well inside the success distance), or the region's centre."""
        if self.target_obj is not None:
            start, target = positions[self.obj], positions[self.target_obj]
            away = start - target
            n = float(np.linalg.norm(away))
            return target + (away / n if n > 1e-6 else np.array([0.0, -1.0])) * (1.4 * BLOCK_HALF)
        return region_centre(self.location)

    def success(self, positions: dict[str, np.ndarray]) -> bool:
        if self.target_obj is not None:
            return float(np.linalg.norm(positions[self.obj] - positions[self.target_obj])) <= BLOCK2BLOCK_DISTANCE
        x0, x1, y0, y1 = region_bounds(self.location)
        x, y = positions[self.obj]
        return x0 <= x <= x1 and y0 <= y <= y1


def sample_task(family: str, positions: dict[str, np.ndarray], rng: np.random.Generator) -> Task:
    """A task that is not already solved by the initial layout."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; expected one of {FAMILIES}")
    verb = VERBS[rng.integers(len(VERBS))]
    names = list(positions)
    for _ in range(100):
        if family in ("block2block", "block2block4"):
            start, target = rng.choice(len(names), 2, replace=False)
            prep = PREPOSITIONS[rng.integers(len(PREPOSITIONS))]
            task = Task(family, f"{verb} the {names[start]} {prep} the {names[target]}", names[start], names[target])
            if float(np.linalg.norm(positions[names[start]] - positions[names[target]])) < 2.5 * BLOCK2BLOCK_DISTANCE:
                continue
        else:
            obj = names[rng.integers(len(names))]
            loc = list(LOCATIONS)[rng.integers(len(LOCATIONS))]
            task = Task(family, f"{verb} the {obj} to the {loc} of the table", obj, location=loc)
        if not task.success(positions):
            return task
    raise RuntimeError("could not sample an unsolved task for this layout")
