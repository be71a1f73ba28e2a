"""Stage 0's image-text tasks: questions about a rendered scene, answered from its ground truth.

PaliGemma learned to ground words in pixels from ``detect`` / ``point`` / ``refer`` tasks that
answer in ``<locNNNN>`` tokens; these are the same kind of task on our boards, with no robot
actions and no steps-to-go:

- ``point``: "point to the red star" -> its place, ``<loc r1><loc c1><loc r0><loc c0>``
- ``name``: "name <place>" -> "red star" (the object at that place)
- ``nearest``: "nearest to the red star" -> the name of the object closest to it
- ``relation``: "is the red star left of the blue cube ?" -> yes / no
- ``goal``: an instruction -> where the moved object should end up (the target block, or the
  named region's centre)
- ``instruction``: the first and an "after" frame with the object moved to its goal -> the
  instruction (canonical verb and preposition)

A place is written coarse to fine, row before column as PaliGemma writes them: the cell of an
8 × 8 grid the point falls in, then the cell within that cell (``PLACE``: 64 bins per axis in
four loc tokens). PaliGemma spends one 1024-way
token per axis; the tiny model does not learn a flat 64-way token per axis in 1,000 steps, where
two 8-way digits point within a block width 58% of the time by step 600 (docs/results).
``--unimodal`` pretraining uses ``list`` instead, with no words in the prompt: every object's
location in a fixed order, so the tower learns to see but never to tie a word to what it sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sefm_policy.prompts import Observation
from sefm_policy.tokenizers import PlaceTokenizer
from sefm_policy.vocab import loc_token
from sefm_sim_bridge.grounding_scenes import SCENE_KINDS, GroundingScene, GroundingScenes
from sefm_sim_bridge.scene import BLOCK_HALF, board_point, image_point
from sefm_sim_bridge.tasks import LOCATIONS, PREPOSITIONS, VERBS, region_centre

PLACE = PlaceTokenizer()  # how every place is written (sefm_policy.tokenizers)
TASKS = ("point", "name", "nearest", "relation", "goal", "instruction")
TASK_WEIGHTS = {"point": 0.35, "name": 0.15, "nearest": 0.1, "relation": 0.1, "goal": 0.15, "instruction": 0.15}
# Scene kinds (single, blocks8, blocks4, varied, banana, shapes) by share of training done: one
# object alone first, then the effector and a few blocks, then everything. (Shapes came later and
# is asked through place_kinds; zero here keeps the loc questions' draws as they were.)
CURRICULUM = (
    (0.1, (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    (0.3, (0.3, 0.0, 0.4, 0.0, 0.3, 0.0)),
    (1.0, (0.1, 0.35, 0.2, 0.25, 0.1, 0.0)),
)


def kind_weights(progress: float) -> tuple[float, ...]:
    """The curriculum's scene mix at ``progress`` (0..1) of the run."""
    return next(w for until, w in CURRICULUM if progress < until or until == 1.0)


RELATIONS = {"left of": (0, -1), "right of": (0, 1), "above": (1, 1), "below": (1, -1)}
RELATION_MARGIN = 0.03  # metres: pairs closer than this along the axis are not asked about
POINT_TOLERANCE = 2 * BLOCK_HALF  # the probe's "within one block width"


@dataclass(frozen=True)
class Question:
    task: str
    observation: Observation
    prompt: str
    answer: str
    truth: np.ndarray | None = None  # point and goal: the board (x, y) the answer names


def point_tokens() -> int:
    """Loc tokens per place."""
    return len(PLACE.slot_sizes)


def point_text(xy) -> str:
    return "".join(loc_token(int(d)) for d in PLACE.encode(image_point(xy)))


def parse_point(text: str) -> np.ndarray | None:
    """Board (x, y) of the first place in an answer, at its cell's centre; None if it has too few
    loc tokens or a digit outside the grid."""
    locs = [int(t[4:8]) for t in text.replace("><", "> <").split() if re.fullmatch(r"<loc\d{4}>", t)]
    if len(locs) < point_tokens() or np.any(np.array(locs[: point_tokens()]) >= PLACE.slot_sizes):
        return None
    return np.array(board_point(*PLACE.decode(np.array(locs[: point_tokens()]))))


def points_at(xy: np.ndarray | None, truth: np.ndarray) -> bool:
    """The probe's hit: a parsed answer within one block width of the truth."""
    return xy is not None and float(np.linalg.norm(xy - truth)) <= POINT_TOLERANCE


def questions_for(
    scene: GroundingScene,
    after,
    rng: np.random.Generator,
    count: int,
    unimodal: bool = False,
    task_weights: dict[str, float] = TASK_WEIGHTS,
) -> list[Question]:
    """``count`` questions about one scene; ``after(name, xy)`` renders it with ``name`` moved to xy.
    ``task_weights``: each task's share of the questions (missing tasks are not asked)."""
    if unimodal:
        return [_list_question(scene)]
    names = list(scene.objects)
    shares = np.array([task_weights.get(t, 0.0) for t in TASKS])
    picks = rng.choice(len(TASKS), count, p=shares / shares.sum())
    out = []
    for k in picks:
        task = TASKS[int(k)]
        if len(names) < 2 and task in ("nearest", "relation"):
            task = "point"
        if scene.kind == "banana" and task == "name":
            task = "point"
        out.append(QUESTION_MAKERS[task](scene, names, rng, after))
    return out


def _static(scene: GroundingScene, prompt: str, answer: str, task: str, truth=None) -> Question:
    return Question(task, Observation(images=(scene.image, scene.image), instruction=prompt), prompt, answer, truth)


def _point(scene, names, rng, after, effector_share: float = 0.15) -> Question:
    if scene.effector is not None and rng.random() < effector_share:
        return _static(scene, "point to the effector", point_text(scene.effector), "point", scene.effector)
    name = names[int(rng.integers(len(names)))]
    xy = scene.objects[name]
    return _static(scene, f"point to the {name}", point_text(xy), "point", xy)


def _name(scene, names, rng, after) -> Question:
    name = names[int(rng.integers(len(names)))]
    return _static(scene, f"name {point_text(scene.objects[name])}", name, "name")


def _nearest(scene, names, rng, after) -> Question:
    name = names[int(rng.integers(len(names)))]
    others = [n for n in names if n != name]
    dist = [float(np.linalg.norm(scene.objects[n] - scene.objects[name])) for n in others]
    return _static(scene, f"nearest to the {name}", others[int(np.argmin(dist))], "nearest")


def _relation(scene, names, rng, after) -> Question:
    relation = list(RELATIONS)[int(rng.integers(len(RELATIONS)))]
    axis, sign = RELATIONS[relation]
    for _ in range(20):
        a, b = rng.choice(len(names), 2, replace=False)
        delta = (scene.objects[names[a]] - scene.objects[names[b]])[axis]
        if abs(delta) >= RELATION_MARGIN:
            answer = "yes" if delta * sign > 0 else "no"
            return _static(scene, f"is the {names[a]} {relation} the {names[b]} ?", answer, "relation")
    return _point(scene, names, rng, after)


def _goal_task(scene, names, rng) -> tuple[str, str, np.ndarray, np.ndarray, str]:
    """(object, instruction, the place it names, where the object ends up, canonical instruction)
    of a task this scene could pose: Block2Block names the target block, block2location a region."""
    verb = VERBS[int(rng.integers(len(VERBS)))]
    obj = names[int(rng.integers(len(names)))]
    if len(names) > 1 and rng.random() < 0.7:
        target = names[int(rng.choice([i for i in range(len(names)) if names[i] != obj]))]
        prep = PREPOSITIONS[int(rng.integers(len(PREPOSITIONS)))]
        away = scene.objects[obj] - scene.objects[target]
        goal = scene.objects[target] + away / max(float(np.linalg.norm(away)), 1e-6) * 2.2 * BLOCK_HALF
        instruction = f"{verb} the {obj} {prep} the {target}"
        return obj, instruction, scene.objects[target], goal, f"push the {obj} to the {target}"
    location = list(LOCATIONS)[int(rng.integers(len(LOCATIONS)))]
    centre = region_centre(location)
    return obj, f"{verb} the {obj} to the {location} of the table", centre, centre, f"push the {obj} to the {location}"


def _goal(scene, names, rng, after) -> Question:
    _, instruction, where, _, _ = _goal_task(scene, names, rng)
    return _static(scene, f"goal : {instruction}", point_text(where), "goal", where)


def _instruction(scene, names, rng, after) -> Question:
    obj, _, _, goal, canonical = _goal_task(scene, names, rng)
    last = after(obj, goal)
    return Question("instruction", Observation(images=(scene.image, last)), "what did the robot do ?", canonical)


def _list_question(scene: GroundingScene) -> Question:
    """Unimodal vision pretraining: every object's place in a fixed (name) order, effector first."""
    truth = np.array(
        [*([] if scene.effector is None else [scene.effector])] + [scene.objects[n] for n in sorted(scene.objects)]
    )
    return _static(scene, "", "".join(point_text(xy) for xy in truth), "list", truth)


QUESTION_MAKERS = {
    "point": _point,
    "name": _name,
    "nearest": _nearest,
    "relation": _relation,
    "goal": _goal,
    "instruction": _instruction,
}


class GroundingData:
    """Batches of questions over fresh scenes, each drawn from (seed, index): reproducible, so a
    resumed run sees exactly the scenes an uninterrupted one would. ``held_out`` scenes come from
    seeds no training batch uses."""

    def __init__(
        self,
        image_size: int,
        questions_per_scene: int = 4,
        unimodal: bool = False,
        task_weights: dict[str, float] = TASK_WEIGHTS,
    ) -> None:
        self.scenes = GroundingScenes((image_size, image_size))
        self.per_scene = questions_per_scene
        self.unimodal = unimodal
        self.task_weights = task_weights

    def batch(self, seed: int, step, size: int, weights=CURRICULUM[-1][1]) -> list[Question]:
        """``step``: an int or a sequence of non-negative ints that, with ``seed``, picks the
        scenes; ``weights``: the share of each of SCENE_KINDS (default: the full mix)."""
        rng = np.random.default_rng([seed, *np.atleast_1d(step).tolist()])
        kinds = SCENE_KINDS
        out: list[Question] = []
        while len(out) < size:
            kind = kinds[int(rng.choice(len(kinds), p=np.asarray(weights) / np.sum(weights)))]
            scene, after = self.scene(kind, 2 * int(rng.integers(2**30)))  # even seeds; the probe's are odd
            count = min(self.per_scene, size - len(out))
            out += questions_for(scene, after, rng, count, self.unimodal, self.task_weights)
        return out[:size]

    def scene(self, kind: str, scene_seed: int):
        """A scene and its ``after(name, xy)``: the frame with that object moved to xy."""
        scene, env, names = self.scenes.sample(kind, scene_seed)
        body = {shown: b for b, shown in names.items()}

        def after(name: str, xy) -> np.ndarray:
            return self.scenes.moved(kind, env, names, body[name], xy).image

        return scene, after

    def probe(self, kind: str, task: str, count: int, seed: int = 0) -> list[Question]:
        """Held-out questions of one task on ``count`` scenes of one kind (odd scene seeds);
        ``point`` always names an object, never the effector."""
        rng = np.random.default_rng([seed, 2, SCENE_KINDS.index(kind), (*TASKS, "list").index(task)])
        out = []
        for i in range(count):
            scene, after = self.scene(kind, 2 * (seed * 100_003 + i) + 1)
            names = list(scene.objects)
            if task == "list":
                out.append(_list_question(scene))
            elif task == "point":
                out.append(_point(scene, names, rng, after, effector_share=0.0))
            else:
                out.append(QUESTION_MAKERS[task](scene, names, rng, after))
        return out

    def close(self) -> None:
        self.scenes.close()
