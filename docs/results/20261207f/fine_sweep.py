"""`sefm reward calibrate`'s sweep on a finer grid of s, over the per-frame d arrays detector_bar.py
saved (demonstrations first, then failures): for a reward model whose d reaches 0, the default
0.5 spacing skips the thresholds that matter. Prints, per file, Spearman on the demonstrations,
the recommended s on the pool and on the demonstrations alone, and the scores around them.
Usage: python fine_sweep.py STEP D_NPZ [D_NPZ ...] > out.json
"""

import json
import sys

import numpy as np

from sefm_reward.calibration import sweep

step, out = float(sys.argv[1]), {}
for path in sys.argv[2:]:
    with np.load(path) as z:
        successes, goals = z["successes"].tolist(), z["goals"].tolist()
        ds = [z[f"ep{i}"] for i in range(len(successes))]
    n = sum(successes)
    grid = np.round(np.arange(step, 4.0 + 1e-9, step), 4)
    pooled, alone = sweep(ds, successes, grid, 2, 0.9, goals), sweep(ds[:n], successes[:n], grid, 2, 0.9, goals[:n])
    out[path] = {
        "spearman_on_demonstrations": alone["spearman_on_successes"],
        "demonstrations_alone": {"recommended_threshold": alone["recommended_threshold"], "scores": alone["scores"]},
        "pooled": {"recommended_threshold": pooled["recommended_threshold"], "scores": pooled["scores"]},
    }
print(json.dumps(out, indent=1))
