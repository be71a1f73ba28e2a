"""Is it the place reads? The same steps-to-go function told the true places (the demonstrations'
recorded ones; each failure's from replaying its commands from its seed), on the pool of
detector_bar.py: if the failures' false firings go with the true places, the misreads made them.
Usage: python told_true_places.py REWARD_MODEL DEMOS FAILURES > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_reward.calibration import sweep
from sefm_sim_bridge.envs import make_env
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline
from sefm_trainer.sft import chain_places, places_at

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
tokenizer = model.embodiment.action
demos = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success is not None]
fails = [e for e in load_episodes(sys.argv[3], progress=False).episodes if e.meta.success is False][:100]
env = make_env("block2block", image_size=(96, 96), max_steps=200)
ds = []
with torch.no_grad():
    for ep in demos + fails:
        frames, states = timeline(ep)
        ts = range(ep.last_done + 1)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
        if ep.meta.success:
            places = [places_at(ep, t) for t in ts]
        else:
            o, _ = env.reset(seed=ep.meta.seed)
            places = []
            for t in ts:
                task = env.task
                places.append(chain_places(env.object_positions(), o["effector"], task.obj, task.target_obj, None))
                if t < ep.meta.length:
                    o, *_ = env.step(ep.actions[t])
        tokens = tokenizer.encode(np.zeros((len(ts), 2)), np.stack(places))
        ds.append((model.steps_to_go_log_probs(obs, tokens).exp() @ model.steps_centres).numpy())
env.close()
successes = [bool(e.meta.success) for e in demos + fails]
goals = [e.goal_at for e in demos + fails]
grid, n = np.arange(0.25, 6.01, 0.25), len(demos)
result, alone = sweep(ds, successes, grid, 2, 0.9, goals), sweep(ds[:n], successes[:n], grid, 2, 0.9, goals[:n])
print(
    json.dumps(
        {
            "reward_model": sys.argv[1],
            "demonstrations": len(demos),
            "failures": len(fails),
            "spearman_on_demonstrations": alone["spearman_on_successes"],
            "demonstrations_alone": {key: alone[key] for key in ("recommended_threshold", "scores")},
            "pooled": {key: result[key] for key in ("recommended_threshold", "scores")},
        },
        indent=1,
    )
)
