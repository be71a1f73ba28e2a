"""Co-training in Stage 2: Stage 1's behaviour cloning on its demonstrations kept beside REINFORCE.

A chain-of-thought policy acts on the argmax of its places, and a few AdamW steps of REINFORCE
move that argmax for better or worse (docs/results, session 11). A behaviour-cloning term on
demonstrations in every update holds what imitation taught while practice moves the rest, as
RT-2 co-fine-tunes on its web data and InstructGPT mixes its pretraining loss into PPO ("ptx").
The demonstrations are the Stage 1 data the policy already saw: no new supervision."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.losses import LossOutput, bc_loss
from sefm_policy.model import EFM

from .bag_reader import load_episodes
from .dataset import StepIndex
from .sft import action_targets


class Demonstrations:
    """The successful episodes of a folder, drawn from step by step."""

    def __init__(self, root: str | Path, embodiment: str) -> None:
        episodes = [e for e in load_episodes(root, progress=False).episodes if e.meta.success]
        if not episodes:
            raise ConfigError(f"demonstrations: no successful episodes in {root}")
        kinds = sorted({e.meta.embodiment for e in episodes})
        if kinds != [embodiment]:
            raise ConfigError(f"demonstrations: {root} holds {kinds} episodes, the policy is {embodiment!r}")
        self.index = StepIndex(episodes)

    def loss(self, policy: EFM, size: int, rng: np.random.Generator) -> LossOutput:
        """Behaviour cloning (a reasoning chain's places too) on ``size`` steps drawn at random."""
        steps = [self.index[int(i)] for i in rng.integers(0, len(self.index), size)]
        targets = action_targets(policy.embodiment.action, self.index, steps)
        return bc_loss(policy, [s.observation for s in steps], targets)
