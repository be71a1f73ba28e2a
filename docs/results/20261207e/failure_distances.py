"""Where does the detector fire on a policy's failed episodes? Replays each recorded failure's
commands from its seed (the sim is deterministic; the replayed frames are checked against the
recorded ones) for the named block's true distance to its target on every frame, then, for a
threshold s, the distance on the frame d first reaches it (d from detector_bar.py's cache), and
which other block, if any, then lies within 6 cm of the target (a block pushed there instead).
Usage: python failure_distances.py FAILURES CACHE_DIR W S [S ...] > out.json
"""

import json
import sys
from pathlib import Path

import numpy as np

from sefm_reward.detector import detector_ending
from sefm_sim_bridge.envs import make_env
from sefm_trainer.bag_reader import load_episodes

failures = [e for e in load_episodes(sys.argv[1], progress=False).episodes if e.meta.success is False][:100]
cache, w, thresholds = Path(sys.argv[2]), sys.argv[3], [float(s) for s in sys.argv[4:]]
env = make_env("block2block", image_size=(96, 96), max_steps=200)
rows, mismatched = [], 0
for ep in failures:
    obs, _ = env.reset(seed=ep.meta.seed)
    task = env.task
    frames = ep.frames["front"]
    mismatched += int(not np.array_equal(obs["rgb"], frames[0]))
    dist, other = [], []
    for t in range(ep.meta.length + 1):
        p = env.object_positions()
        dist.append(float(np.linalg.norm(p[task.obj] - p[task.target_obj])))
        near = {
            n: float(np.linalg.norm(q - p[task.target_obj]))
            for n, q in p.items()
            if n not in (task.obj, task.target_obj)
        }
        name = min(near, key=near.get)
        other.append(f"{name} ({near[name]:.3f})" if near[name] <= 0.06 else None)
        if t < ep.meta.length:
            obs, *_ = env.step(ep.actions[t])
    mismatched += int(not np.array_equal(obs["rgb"], frames[-1]))
    with np.load(cache / f"{Path(ep.path).name}.npz") as z:
        d = z[f"w{w}"]
    rows.append(
        {
            "seed": ep.meta.seed,
            "obj": task.obj,
            "min_distance_m": min(dist),
            "d": d,
            "distance": np.array(dist),
            "other": other,
        }
    )
env.close()
out = {"failures": len(rows), "replays_off_their_recording": mismatched, "window": int(w)}
closest = [r["min_distance_m"] for r in rows]
out["min_distance_quantiles_m"] = np.quantile(closest, [0.1, 0.25, 0.5, 0.75]).round(4).tolist()
for s in thresholds:
    fired = [(r, detector_ending(r["d"], s)) for r in rows]
    at = [float(r["distance"][f]) for r, f in fired if f is not None]
    out[f"s={s}"] = {
        "fired_in": len(at),
        "true_distance_when_fired_m": np.round(sorted(at), 3).tolist(),
        "fired_within_7cm": sum(a <= 0.07 for a in at),
        "another_block_at_the_target": [
            f"{r['seed']}: {r['obj']} named, {r['other'][f]}" for r, f in fired if f is not None and r["other"][f]
        ],
    }
print(json.dumps(out, indent=1))
