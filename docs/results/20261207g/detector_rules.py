"""Can a rule over an episode's d sequence, rather than d <= s on one frame, meet #14's pooled bar?
Over the per-frame d that detector_bar.py saved (100 held demonstrations, then 100 of the policy's
failures; places pooled over w = 1, 4, 8 frames), each rule becomes a per-frame score that fires
at <= 0 and is judged by `sefm reward calibrate`'s own scorer (`score_threshold`): d over the last
k frames, at most (k frames in a row) or on average, below s; or two windows' d below their own s.
Prints, per model and rule family, the rule with the most recall at precision >= 0.9 and >= 0.85.
Usage: python detector_rules.py NAME=D_NPZ_PREFIX [...] > out.json  (prefix: ..._d_w)
"""

import json
import sys

import numpy as np

from sefm_reward.calibration import score_threshold

GRID = np.round(np.arange(0.1, 4.001, 0.1), 2)


def trailing(d: np.ndarray, k: int, reduce) -> np.ndarray:
    return np.array([reduce(d[max(0, t - k + 1) : t + 1]) for t in range(len(d))])


def families(ds: dict[int, list[np.ndarray]]):
    """(family, rule, per-episode scores) for every rule tried; a rule fires where its score <= 0."""
    for w, eps in ds.items():
        for k in (1, 2, 3, 4):
            for name, reduce in (("max", np.max), ("mean", np.mean)):
                smoothed = [trailing(d, k, reduce) for d in eps]
                for s in GRID:
                    yield f"{name} of the last k frames' d", {"w": w, "k": k, "s": s}, [x - s for x in smoothed]
    for a, b in ((1, 4), (1, 8), (4, 8)):
        for sa in GRID[:30]:
            for sb in GRID[:30]:
                scores = [np.maximum(da - sa, db - sb) for da, db in zip(ds[a], ds[b], strict=True)]
                yield "two windows both below their s", {"w": [a, b], "s": [sa, sb]}, scores


def best(rows: list[dict], floor: float) -> dict | None:
    kept = [r for r in rows if r["precision"] is not None and r["precision"] >= floor]
    return max(kept, key=lambda r: (r["recall"], r["precision"]), default=None)


out = {}
for arg in sys.argv[1:]:
    name, prefix = arg.split("=", 1)
    ds = {}
    for w in (1, 4, 8):
        with np.load(f"{prefix}{w}.npz") as z:
            successes, goals = z["successes"].tolist(), z["goals"].tolist()
            ds[w] = [z[f"ep{i}"] for i in range(len(successes))]
    rows: dict[str, list] = {}
    for family, rule, scores in families(ds):
        score = score_threshold(scores, successes, 0.0, goals=goals)
        rule = {k: (np.asarray(v).round(2).tolist()) for k, v in rule.items()}
        rows.setdefault(family, []).append(
            rule | {"precision": score.precision, "recall": score.recall, "fired_on_failures": score.false_on_failures}
        )
    out[name] = {f: {"at_0.9": best(r, 0.9), "at_0.85": best(r, 0.85), "rules": len(r)} for f, r in rows.items()}
print(json.dumps(out, indent=1))
