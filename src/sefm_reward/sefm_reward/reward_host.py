"""The frozen reward model a reward process reads d with, for one robot or for every robot of a host.

One process per robot loads one copy of the reward model per robot and runs one pass per frame.
A host serving several robots keeps the newest frame of each robot waiting and, whenever its
worker is free, scores all of them in one pass: while one pass runs, the other robots' frames
gather, so batches fill without waiting on a timer. As with one robot, a slow model skips frames rather
than falling behind (the paper's asynchronous success detector).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable

from sefm_policy.prompts import Observation

from .detector import StepsToGoDetector

Deliver = Callable[[float], None]  # the frame's d, to the robot that sent it


class RewardHost:
    def __init__(self, detector: StepsToGoDetector, on_error: Callable[[Exception], None]) -> None:
        self.detector = detector
        self.on_error = on_error
        self.cond = threading.Condition()
        self.pending: dict[Hashable, tuple[Observation, deque, Deliver]] = {}
        self.batch_sizes: Counter[int] = Counter()  # how many passes scored how many robots' frames
        self.stopping = False
        self.worker = threading.Thread(target=self._work, daemon=True)
        self.worker.start()

    def submit(self, robot: Hashable, observation: Observation, window: deque, deliver: Deliver) -> None:
        """Queue a robot's newest frame, with its episode's ``detector.window()``; one of its frames
        still waiting is dropped for it (a window then pools the frames read, not every frame)."""
        with self.cond:
            self.pending[robot] = (observation, window, deliver)
            self.cond.notify()

    def drop(self, robot: Hashable) -> None:
        """Forget a robot's waiting frame (its episode ended)."""
        with self.cond:
            self.pending.pop(robot, None)

    def score(self, batch: list[tuple[Observation, deque, Deliver]]) -> None:
        """One pass for every robot's frame; each d goes back to its robot."""
        distances = self.detector.distances([o for o, _, _ in batch], [window for _, window, _ in batch])
        self.batch_sizes[len(batch)] += 1
        for (*_, deliver), d in zip(batch, distances, strict=True):
            deliver(float(d))

    def _work(self) -> None:
        """The worker never dies silently: a batch that fails goes to ``on_error`` and the next is read."""
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.pending or self.stopping)
                if self.stopping:
                    return
                batch, self.pending = list(self.pending.values()), {}
            try:
                self.score(batch)
            except Exception as err:
                self.on_error(err)

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.worker.join(timeout=2.0)
