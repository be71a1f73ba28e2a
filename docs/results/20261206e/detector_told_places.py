"""d on calibration demonstrations read two ways: told the true places (the steps-to-go function
alone) and on the places the reward model says itself (what the detector sees); median d by true
steps to go, and the demonstration sweep (sefm_reward.calibration.sweep) of each.
Demonstrations held past their goal (session 24) are read up to their last done frame; their
steps to go are negative past the goal (0 to the model). Usage: python detector_told_places.py
REWARD_MODEL EPISODES N > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_reward.calibration import sweep
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline
from sefm_trainer.sft import places_at

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
episodes = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success is not None]
episodes = episodes[: int(sys.argv[3])]
told, said, to_go = [], [], []
with torch.no_grad():
    for ep in episodes:
        frames, states = timeline(ep)
        T, goal = ep.last_done, ep.goal_at
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in range(T + 1)]
        places = np.stack([model.embodiment.action.encode(np.zeros(2), places_at(ep, t)) for t in range(T + 1)])
        told.append((model.steps_to_go_log_probs(obs, places).exp() @ model.steps_centres).numpy())
        said.append((model.steps_to_go_log_probs(obs).exp() @ model.steps_centres).numpy())
        to_go.append(goal - np.arange(T + 1))  # negative past the goal
successes = [e.meta.success for e in episodes]
out = {"reward_model": sys.argv[1], "episodes": len(episodes)}
for name, ds in (("told_true_places", told), ("own_places", said)):
    result = sweep(ds, successes, np.arange(0.5, 10.01, 0.5), 2, 0.9, [e.goal_at for e in episodes])
    by_steps = {
        k: float(np.median(np.concatenate([d[s == k] for d, s in zip(ds, to_go, strict=True)])))
        for k in range(-6, 8)
        if any((s == k).any() for s in to_go)
    }
    out[name] = {
        "recommended_threshold": result["recommended_threshold"],
        "spearman_on_successes": result["spearman_on_successes"],
        "median_d_by_steps_to_go": by_steps,
        "scores": [s for s in result["scores"] if s["threshold"] <= 6],
    }
print(json.dumps(out, indent=1))
