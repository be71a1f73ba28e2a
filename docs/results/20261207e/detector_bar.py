"""#14's detector bar on demonstrations and a policy's failures pooled, for several windows of
place reads at once: every frame's places said once (five reads), d told the median of the last w
frames' places, then `sefm reward calibrate`'s sweep on the pool. Also saves every episode's d.
Usage: python detector_bar.py REWARD_MODEL DEMOS FAILURES OUT_PREFIX [W ...] (windows: 1 4 8)
An episode's d is kept in OUT_PREFIX_cache/ and not computed again (REVERSE=1 walks the episodes
from the end, so a second process shares the work); FAILURES' first 100 are used.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_reward.calibration import sweep
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
tokenizer = model.embodiment.action
WINDOWS = tuple(int(w) for w in sys.argv[5:]) or (1, 4, 8)
demos = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success is not None]
fails = [e for e in load_episodes(sys.argv[3], progress=False).episodes if e.meta.success is False][:100]
episodes = demos + fails
ds = {w: [] for w in WINDOWS}
cache = Path(f"{sys.argv[4]}_cache")
cache.mkdir(parents=True, exist_ok=True)
with torch.no_grad():
    order = list(enumerate(episodes))[:: -1 if os.environ.get("REVERSE") else 1]
    for i, ep in order:
        kept = cache / f"{Path(ep.path).name}.npz"
        if not kept.exists():
            frames, states = timeline(ep)
            ts = range(ep.last_done + 1)
            obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
            said = tokenizer.decode_places(model.said_places(obs))
            d = {}
            for w in WINDOWS:
                pooled = np.stack([np.median(said[max(t - w + 1, 0) : t + 1], axis=0) for t in ts])
                tokens = tokenizer.encode(np.zeros((len(ts), 2)), pooled)
                d[f"w{w}"] = (model.steps_to_go_log_probs(obs, tokens).exp() @ model.steps_centres).numpy()
            np.savez(cache / f".{kept.name}", **d)
            os.replace(cache / f".{kept.name}", kept)
        print(f"{i + 1}/{len(episodes)}", file=sys.stderr, flush=True)
    for ep in episodes:
        with np.load(cache / f"{Path(ep.path).name}.npz") as d:
            for w in WINDOWS:
                ds[w].append(d[f"w{w}"])
successes = [bool(e.meta.success) for e in episodes]
goals = [e.goal_at for e in episodes]
out = {"reward_model": sys.argv[1], "demonstrations": len(demos), "failures": len(fails)}
for w, d in ds.items():
    pooled = sweep(d, successes, np.arange(0.25, 8.01, 0.25), 2, 0.9, goals)
    alone = sweep(d[: len(demos)], successes[: len(demos)], np.arange(0.25, 8.01, 0.25), 2, 0.9, goals[: len(demos)])
    out[f"w{w}"] = {
        "spearman_on_demonstrations": alone["spearman_on_successes"],
        "demonstrations_alone": {k: alone[k] for k in ("recommended_threshold",)}
        | {"scores": [s for s in alone["scores"] if s["threshold"] <= 6]},
        "pooled": {k: pooled[k] for k in ("recommended_threshold",)}
        | {"scores": [s for s in pooled["scores"] if s["threshold"] <= 6]},
    }
    np.savez_compressed(
        f"{sys.argv[4]}_w{w}.npz",
        **{f"ep{i}": x for i, x in enumerate(d)},
        successes=np.array(successes),
        goals=np.array(goals),
    )
print(json.dumps(out, indent=1))
