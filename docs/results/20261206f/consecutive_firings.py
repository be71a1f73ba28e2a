"""Would a detector that waits for k frames in a row with d <= s do better? Offline, from the d of
every frame: the hold-taught model on 100 held calibration demonstrations (a firing right from 2
steps before the goal on), and both 8-block reward models on the same 60 practice episodes (right
when the task is done on the frame it fires). Usage: python consecutive_firings.py > out.json
"""

import json
from pathlib import Path

here = Path(__file__).parent


def first(d, s, k):
    run = 0
    for t in range(1, len(d)):
        run = run + 1 if d[t] <= s else 0
        if run >= k:
            return t
    return None


def on_demos(ds, goals, s, k):
    fired = [(first(d, s, k), g) for d, g in zip(ds, goals, strict=True)]
    fired = [(f, g) for f, g in fired if f is not None]
    right = sum(f >= g - 2 for f, g in fired)
    return {"precision": right / len(fired) if fired else None, "recall": right / len(ds)}


def on_practice(episodes, key, s, k):
    right = fired = reached = false = failed = 0
    for e in episodes:
        d, done = e["d"][key], e["done"]
        ever = any(done[1:])
        reached, failed = reached + ever, failed + (not ever)
        f = first(d, s, k)
        if f is not None:
            fired, right, false = fired + 1, right + bool(done[f]), false + (not ever)
    precision = right / fired if fired else None
    return {"precision": precision, "recall": right / reached, "false_on_failures": false / failed}


demos = json.loads((here / "calibration_hold_taught_per_frame_d.json").read_text())
practice = {
    "hold-taught": json.loads((here / "detector_on_rollouts_b2b8_hold_taught.json").read_text())["per_episode"],
    "shipped": json.loads((here.parent / "20261206e" / "detector_on_rollouts_b2b8.json").read_text())["per_episode"],
}
thresholds, ks = (1.5, 2.0, 2.5, 3.0, 3.5), (1, 2, 3)
out = {
    "demos_hold_taught": {f"k={k} s={s}": on_demos(demos["d"], demos["goals"], s, k) for k in ks for s in thresholds},
    "practice": {
        name: {f"k={k} s={s}": on_practice(eps, next(iter(eps[0]["d"])), s, k) for k in ks for s in thresholds}
        for name, eps in practice.items()
    },
}
print(json.dumps(out, indent=1))
