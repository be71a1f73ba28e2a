"""Does a chain read the named block pulled towards the effector when the effector stands beside it?
On held-out boards (odd scene seeds) with the effector put 4-12 cm from the named block at a random
angle (``SceneChains(effector_near=1)``), the places the checkpoint says (as configured: five reads
for a shipped policy) against the truth: the named block's read error along the block -> effector
direction (positive: pulled towards it) and across it, and how often it is read within a block width.
Usage: python pull_probe.py CHECKPOINT [BOARDS] > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.scene import board_point
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.scene_chain import SceneChains

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
boards = int(sys.argv[2]) if len(sys.argv) > 2 else 200
chains = SceneChains(model.image_size, "blocks8", per_scene=1, effector_near=1.0)
observations, places, truth = chains.boards(1, np.arange(boards))
chains.close()
with torch.no_grad():
    said = np.concatenate([
        model.embodiment.action.decode_places(model.said_places(observations[i : i + 32]))
        for i in range(0, boards, 32)
    ])  # fmt: skip
toward, across, hit, gap = [], [], [], []
for i, (_, effector) in enumerate(truth):
    true_block = np.array(board_point(*places[i][0]))
    read = np.array(board_point(*said[i][0]))
    way = (np.asarray(effector) - true_block) / np.linalg.norm(np.asarray(effector) - true_block)
    err = read - true_block
    toward.append(err @ way)
    across.append(abs(err @ np.array([-way[1], way[0]])))
    hit.append(np.linalg.norm(err) <= POINT_TOLERANCE)
    gap.append(np.linalg.norm(np.asarray(effector) - true_block))
toward, across, gap = (np.array(x) * 100 for x in (toward, across, gap))
print(json.dumps({
    "checkpoint": sys.argv[1], "boards": boards, "place_reads": model.config.place_reads,
    "named_block_within_a_block_width": round(float(np.mean(hit)), 3),
    "pulled_towards_effector_cm": {
        "mean": round(float(toward.mean()), 2), "median": round(float(np.median(toward)), 2),
    },
    "across_cm_median": round(float(np.median(across)), 2),
    "pulled_by_gap_cm": {
        f"{lo}-{hi}": round(float(np.median(toward[(gap >= lo) & (gap < hi)])), 2)
        for lo, hi in ((4, 6), (6, 8), (8, 12))
    },
}, indent=1))  # fmt: skip
