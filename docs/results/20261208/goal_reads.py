"""How sharply does a model read the named block and its target on the frames near a
demonstration's goal, where the detector must tell 5.0 cm from 5.7? Each of the last six frames'
places as the model says them (five reads with ``place_reads: half_patch``) against the recorded
truth, in board cm: per-coordinate error of the block and the target, and the error of the
block-to-target distance they imply. Compare with detector_ceiling.py's sigma.
Usage: python goal_reads.py DEMONSTRATIONS CHECKPOINT > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline
from sefm_trainer.pretrain import _on_board
from sefm_trainer.sft import places_at

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[2]).eval()
tokenizer = model.embodiment.action
block_err, target_err, dist_err, dist_true = [], [], [], []
with torch.no_grad():
    for ep in load_episodes(sys.argv[1], progress=False).episodes:
        frames, states = timeline(ep)
        ts = range(max(ep.meta.length - 5, 0), ep.meta.length + 1)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
        said = _on_board(tokenizer.decode_places(model.said_places(obs)))
        truth = _on_board(np.stack([places_at(ep, t) for t in ts]))
        block_err.append(said[:, 0] - truth[:, 0])
        target_err.append(said[:, 1] - truth[:, 1])
        read = np.linalg.norm(said[:, 0] - said[:, 1], axis=1)
        true = np.linalg.norm(truth[:, 0] - truth[:, 1], axis=1)
        dist_err.append(read - true)
        dist_true.append(true)
block, target = np.concatenate(block_err) * 100, np.concatenate(target_err) * 100
dist, true = np.concatenate(dist_err) * 100, np.concatenate(dist_true) * 100
near = true <= 7


def spread(x):
    """Robust sigma (1.4826 x median absolute deviation) and the plain standard deviation."""
    return {
        "robust_sigma": float(1.4826 * np.median(np.abs(x - np.median(x)))),
        "std": float(np.std(x)),
        "median": float(np.median(x)),
    }


print(json.dumps({
    "checkpoint": sys.argv[2], "frames": len(dist),
    "block_cm_per_coordinate": spread(block.ravel()), "target_cm_per_coordinate": spread(target.ravel()),
    "distance_error_cm": spread(dist), "distance_error_cm_within_7cm": spread(dist[near]),
    "frames_within_7cm": int(near.sum()),
    "share_distance_error_over_0.7cm_within_7cm": float(np.mean(np.abs(dist[near]) > 0.7)),
}, indent=1))  # fmt: skip
