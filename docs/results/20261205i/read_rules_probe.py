"""How right each rule of reading a chain's places is on the states greedy acting reaches (session 18).

The shipped 4-block chain acts greedily with a single read on seeds FIRST..FIRST+N-1; the last 30
steps of every episode are kept, and the places are read again under each shift of the images
(a shifted copy of the normalised images, the strip shifted in set to zero). A rule is the median
(or, "conf_", the read whose coarse digit is most confident) over its shifts. Prints one JSON
object: per rule, the share of steps where the named block, the target and the effector are read
within a block width, on failing and on successful episodes. The rule shipped as
``place_reads: half_patch`` is "axis5". Run from the repository root:
  python docs/results/20261205i/read_rules_probe.py 600000 100
"""

import json
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from greedy_failures import replayed

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.model import _shifted
from sefm_sim_bridge.scene import board_point
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.rollout import run_episodes

SHIFTS = [(0, 0), (0, 8), (8, 0), (8, 8), (-8, -8), (8, -8), (-8, 8), (0, -8), (-8, 0)]
RULES = {
    "plain": [(0, 0)],
    "hp4": SHIFTS[:4],
    "sym3": [(0, 0), (8, 8), (-8, -8)],
    "sym5": [(0, 0), (8, 8), (-8, -8), (8, -8), (-8, 8)],
    "axis5": [(0, 0), (0, 8), (8, 0), (0, -8), (-8, 0)],
    "all9": SHIFTS,
}

torch.set_num_threads(1)
checkpoint = "checkpoints/stage1_block2block4/best_bc"
policy = load_checkpoint(checkpoint).reconfigured(place_reads="single").eval()
first, count = int(sys.argv[1]), int(sys.argv[2])
episodes = run_episodes(
    policy, None, range(first, first + count), task_family="block2block4", greedy=True, end_on="ground_truth"
)
obs, truth, fail = [], [], []
for ep in episodes:
    _, true_places, _ = replayed(policy, "block2block4", ep)
    kept = range(max(0, ep.length - 30), ep.length)
    obs += [ep.observation(t) for t in kept]
    truth += [true_places[t] for t in kept]
    fail += [not ep.ground_truth_success] * len(kept)
truth, fail = np.array(truth), np.array(fail)
tokenizer, plain = policy.embodiment.action, policy._normalise
coarse = list(tokenizer.coarse_place_slots)
reads, confidence = {}, {}
for dy, dx in SHIFTS:
    policy._normalise = lambda raw, dy=dy, dx=dx: _shifted(plain(raw), dy, dx)
    said, sure = [], []
    for i in range(0, len(obs), 64):
        sample = policy.sample_actions(obs[i : i + 64], greedy=True)
        with torch.no_grad():
            dist = policy.action_distributions(obs[i : i + 64], sample.tokens)
        sure.append(dist.exp().max(-1).values[:, coarse].numpy())
        said.append(tokenizer.decode_places(sample.tokens) - np.array([dx, dy]) / policy.image_size)
    reads[(dy, dx)], confidence[(dy, dx)] = np.concatenate(said), np.concatenate(sure)
policy._normalise = plain
true_board = np.array([[board_point(*p) for p in step] for step in truth])


def scored(places: np.ndarray) -> dict:
    board = np.array([[board_point(*p) for p in step] for step in places])
    hit = np.linalg.norm(board - true_board, axis=-1) <= POINT_TOLERANCE
    return {"fail": hit[fail].mean(0).round(3).tolist(), "ok": hit[~fail].mean(0).round(3).tolist()}


out = {"checkpoint": checkpoint, "seeds": [first, first + count - 1], "states": len(obs)}
out["failure_states"] = int(fail.sum())
for name, use in RULES.items():
    out[name] = scored(np.median(np.stack([reads[s] for s in use]), 0))
    if len(use) > 1:
        chosen = np.zeros_like(reads[(0, 0)])
        for p in range(3):
            for axis, slot in ((1, 2 * p), (0, 2 * p + 1)):  # slot 2p is the row digit, 2p + 1 the column's
                best = np.stack([confidence[s][:, slot] for s in use]).argmax(0)
                chosen[:, p, axis] = np.stack([reads[s][:, p, axis] for s in use])[best, np.arange(len(best))]
        out["conf_" + name] = scored(chosen)
print(json.dumps(out, indent=1))
