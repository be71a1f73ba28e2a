"""Would d read over a few frames' places meet the detector bar? On demonstrations held past their
goal: every frame's places as the reward model says them (five reads), then d told, for each frame,
the median of the places said on it and on the frames just before (per coordinate), against d on
its own frame's places and on the true ones; the demonstration sweep of each.
Usage: python places_over_frames.py REWARD_MODEL EPISODES N [W ...] > out.json (windows: 1 2 3 4 unless given)
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
episodes = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success][: int(sys.argv[3])]
tokenizer = model.embodiment.action
WINDOWS = tuple(int(w) for w in sys.argv[4:]) or (1, 2, 3, 4)
ds = {f"said_over_{w}_frames": [] for w in WINDOWS} | {"told_true_places": []}
with torch.no_grad():
    for ep in episodes:
        frames, states = timeline(ep)
        ts = range(ep.last_done + 1)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
        said = tokenizer.decode_places(model.said_places(obs))  # (T+1, 3, 2)
        true = np.stack([tokenizer.encode(np.zeros(2), places_at(ep, t)) for t in ts])

        def d_of(places_tokens, obs=obs):
            return (model.steps_to_go_log_probs(obs, places_tokens).exp() @ model.steps_centres).numpy()

        ds["told_true_places"].append(d_of(true))
        for w in WINDOWS:
            pooled = np.stack([np.median(said[max(t - w + 1, 0) : t + 1], axis=0) for t in ts])
            tokens = tokenizer.encode(np.zeros((len(ts), 2)), pooled)
            ds[f"said_over_{w}_frames"].append(d_of(tokens))
goals = [e.goal_at for e in episodes]
out = {"reward_model": sys.argv[1], "episodes": len(episodes)}
for name, d in ds.items():
    result = sweep(d, [True] * len(d), np.arange(0.5, 6.01, 0.25), 2, 0.9, goals)
    out[name] = {
        "recommended_threshold": result["recommended_threshold"],
        "spearman_on_successes": result["spearman_on_successes"],
        "best": next((s for s in result["scores"] if s["threshold"] == result["recommended_threshold"]), None),
        "scores": [s for s in result["scores"] if s["threshold"] <= 4],
    }
print(json.dumps(out, indent=1))
