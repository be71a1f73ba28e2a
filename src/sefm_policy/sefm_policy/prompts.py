"""What the model is asked: one model, three prompts, the text says what to predict."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

MAX_PROMPT_TOKENS = 32  # a prompt's text tokens the model reads; longer ones are cut


class Task(str, Enum):
    ACT = "act"
    STEPS = "steps"
    INSTRUCTION = "instruction"
    ANSWER = "answer"  # Stage 0: the prompt is the question itself


@dataclass(frozen=True)
class Observation:
    """One step as the model sees it.

    ``images`` are uint8 HxWx3 frames in the embodiment's camera order
    (LanguageTable: current, previous; ALOHA: top, angle, left wrist, right wrist;
    instruction prediction: first, last). ``state`` is the joint vector (ALOHA).
    """

    images: tuple[np.ndarray, ...]
    instruction: str = ""
    state: np.ndarray | None = field(default=None, compare=False)


def prompt_text(task: Task, instruction: str) -> str:
    if task is Task.ACT:
        return f"act: {instruction}"
    if task is Task.STEPS:
        return f"steps to go: {instruction}"
    if task is Task.ANSWER:
        return instruction
    return "what did the robot do ?"
