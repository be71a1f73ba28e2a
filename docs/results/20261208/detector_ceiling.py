"""How sharp must the places be for a success detector to meet #14's bar on demonstrations?
The detector here is the best one places allow: it fires on the first frame (>= 1) whose named
block is said within r of its target, and, as ``sefm reward calibrate`` counts, it is right if
that frame is within TOLERANCE steps of the goal. Told each frame's true places, then the same
quantised to the chain's place units, then with Gaussian read noise of sigma (cm, per coordinate,
fresh each frame, five draws). No model runs: only the places the demonstrations recorded.
Usage: python detector_ceiling.py DEMONSTRATIONS POLICY_CHECKPOINT > out.json
"""

import json
import sys

import numpy as np

from sefm_policy.checkpoint import load_checkpoint
from sefm_reward.calibration import TOLERANCE
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.pretrain import _on_board
from sefm_trainer.sft import places_at

tokenizer = load_checkpoint(sys.argv[2]).embodiment.action
episodes = load_episodes(sys.argv[1], progress=False).episodes
RADII = np.arange(0.040, 0.0801, 0.0025)


def scores(tracks):
    """Precision and recall of 'block within r of its target' at each r."""
    out = []
    for r in RADII:
        right = fired = 0
        for block, target in tracks:
            near = np.flatnonzero(np.linalg.norm(block - target, axis=1)[1:] <= r)
            if near.size:
                fired += 1
                right += int(near[0] + 1 >= len(block) - 1 - TOLERANCE)
        out.append(
            {"r_cm": round(float(r) * 100, 2), "precision": right / max(fired, 1), "recall": right / len(tracks)}
        )
    return out


def best_at_recall(rows, recall=0.7):
    """The most precise radius with at least ``recall``; else the one with the most recall."""
    ok = [r for r in rows if r["recall"] >= recall]
    return max(ok, key=lambda r: (r["precision"], r["recall"])) if ok else max(rows, key=lambda r: r["recall"])


true, quantised = [], []
for ep in episodes:
    places = np.stack([places_at(ep, t) for t in range(ep.meta.length + 1)])
    for kept, p in ((true, places), (quantised, tokenizer.decode_places(tokenizer.encode_places(places)))):
        board = _on_board(p)
        kept.append((board[:, 0], board[:, 1]))
last = np.array([np.linalg.norm(b[-1] - t[-1]) for b, t in true])
before = np.array(
    [np.linalg.norm(b[-1 - TOLERANCE - 1] - t[-1 - TOLERANCE - 1]) for b, t in true if len(b) > TOLERANCE + 1]
)
result = {
    "demonstrations": len(episodes),
    "tolerance": TOLERANCE,
    "goal_frame_distance_cm_p10_50_90": np.percentile(last * 100, [10, 50, 90]).round(2).tolist(),
    "distance_3_steps_before_goal_cm_p10_50_90": np.percentile(before * 100, [10, 50, 90]).round(2).tolist(),
    "share_within_6cm_3_steps_before_goal": float(np.mean(before <= 0.06)),
    "true": best_at_recall(scores(true)),
    "quantised": best_at_recall(scores(quantised)),
    "noisy": {},
}
rng = np.random.default_rng(0)
for sigma in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0):
    draws = []
    for _ in range(5):
        noisy = [(b + rng.normal(0, sigma / 100, b.shape), t + rng.normal(0, sigma / 100, t.shape)) for b, t in true]
        draws.append(best_at_recall(scores(noisy)))
    result["noisy"][str(sigma)] = {
        "precision_mean": float(np.mean([d["precision"] for d in draws])),
        "recall_mean": float(np.mean([d["recall"] for d in draws])),
        "r_cm": [d["r_cm"] for d in draws],
        "draws_with_recall_0.7": int(sum(d["recall"] >= 0.7 for d in draws)),
    }
print(json.dumps(result, indent=1))
