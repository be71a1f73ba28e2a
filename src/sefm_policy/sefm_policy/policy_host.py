"""The model a policy process acts with, for one robot or for every robot of a host.

One process per robot loads one copy of the model per robot and runs one forward pass per
frame, so N robots on a small machine cost N copies and N passes that fight for the same cores.
A host serving several robots answers the frames that arrive together in one batched pass: in
lockstep practice every robot's next frame comes back at about the same time, so the batch
fills without waiting. A frame waits at most ``window_s`` for the others.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, read_manifest
from .model import EFM
from .prompts import Observation

Answer = Callable[[np.ndarray, np.ndarray], None]  # (the action, its slot bins) for one frame


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    chain_temperature: float = 0.0
    greedy: bool = False


class PolicyHost:
    def __init__(self, checkpoint: str | Path, sampling: Sampling, seed: int = 0, window_s: float = 0.0) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self.model: EFM = load_checkpoint(checkpoint)
        self.version = read_manifest(checkpoint)["metadata"].get("version")
        self.path = str(checkpoint)
        self.sampling = sampling
        self.window_s = window_s
        self.generator = torch.Generator().manual_seed(seed)
        self.pending: list[tuple[Observation, Answer]] = []
        self.first_at = 0.0  # when the oldest pending frame arrived
        self.batch_sizes: Counter[int] = Counter()  # how many passes answered how many frames
        self._reload_lock = threading.Lock()

    def submit(self, observation: Observation, answer: Answer) -> None:
        if not self.pending:
            self.first_at = time.monotonic()
        self.pending.append((observation, answer))

    def wait_s(self) -> float:
        """How long the oldest pending frame may still wait for the others."""
        return max(self.window_s - (time.monotonic() - self.first_at), 0.0) if self.pending else 0.0

    def ready(self, expected: int) -> bool:
        """Answer now: every robot that will send a frame has, or the oldest has waited long enough."""
        return bool(self.pending) and (len(self.pending) >= expected or self.wait_s() == 0.0)

    def flush(self) -> int:
        """One forward pass for every pending frame; each frame's answer is called in order."""
        batch, self.pending = self.pending, []
        if not batch:
            return 0
        model = self.model  # a reload swaps this reference between batches, never within one
        sample = model.sample_actions(
            [obs for obs, _ in batch],
            temperature=self.sampling.temperature,
            chain_temperature=self.sampling.chain_temperature,
            greedy=self.sampling.greedy,
            generator=self.generator,
        )
        self.batch_sizes[len(batch)] += 1
        for i, (_, answer) in enumerate(batch):
            answer(sample.actions[i], sample.tokens[i])
        return len(batch)

    def reload(self, path: str | Path, version) -> bool:
        """Load ``path`` and swap it in; False when that version from that path is already in use
        (every robot of a host hears the same announcement). Raises, keeping the old model, when
        the checkpoint does not load or is of another embodiment."""
        with self._reload_lock:
            if (str(path), version) == (self.path, self.version):
                return False
            model = load_checkpoint(path)
            if model.embodiment.name != self.model.embodiment.name:
                raise ValueError(f"embodiment {model.embodiment.name} != {self.model.embodiment.name}")
            self.model, self.version, self.path = model, version, str(path)
            return True
