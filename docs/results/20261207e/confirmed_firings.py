"""Would waiting for k frames in a row with d <= s make the detector precise on demonstrations and
the policy's failures pooled? Offline, from detector_bar.py's cache of every frame's d: the
detector fires on the first frame t >= k whose k frames up to t all read d <= s, judged as
`sefm reward calibrate` judges it (right within 2 steps of the goal or on a held done frame;
any firing on a failure is false). Usage: python confirmed_firings.py CACHE DEMOS FAILURES > out.json
"""

import json
import sys
from pathlib import Path

import numpy as np

from sefm_reward.calibration import fired_early
from sefm_trainer.bag_reader import peek_episode


def first_confirmed(d: np.ndarray, s: float, k: int) -> int | None:
    below = np.asarray(d) <= s
    for t in range(max(k, 1), len(below)):
        if below[t - k + 1 : t + 1].all():
            return t
    return None


cache, demos, failures = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
episodes = []
for folder, n in ((demos, None), (failures, 100)):
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:n]
    for name in names:
        meta = peek_episode(folder / name)
        goal = meta.extra.get("goal_at", meta.length) if meta.success else None
        with np.load(cache / f"{name}.npz") as z:
            episodes.append((goal, {key: z[key] for key in z.files}))
out = {"demonstrations": sum(g is not None for g, _ in episodes), "failures": sum(g is None for g, _ in episodes)}
for w in ("w1", "w4", "w8"):
    for k in (1, 2, 3):
        rows = []
        for s in np.arange(0.5, 5.01, 0.25):
            right = early = false = 0
            for goal, ds in episodes:
                first = first_confirmed(ds[w], s, k)
                if first is None:
                    continue
                if goal is None:
                    false += 1
                elif fired_early(first, goal):
                    early += 1
                else:
                    right += 1
            fired = right + early + false
            rows.append(
                {
                    "s": float(s),
                    "precision": round(right / fired, 3) if fired else None,
                    "recall": round(right / out["demonstrations"], 3),
                    "early": early,
                    "false_on_failures": false,
                }
            )
        good = [r for r in rows if r["precision"] and r["precision"] >= 0.9]
        out[f"{w}_k{k}"] = {"best": max(good, key=lambda r: r["recall"], default=None), "rows": rows}
print(json.dumps(out, indent=1))
