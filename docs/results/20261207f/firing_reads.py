"""At each first firing of the shipped detector on the policy's failures (w = 8, s = 3): the
places d was told (the median of the last eight frames' five-read places) against the truth of
that frame, and the named block's distance to its target as read and as it was. Separates a read
that puts the block at its target from a steps-to-go function that calls a far block done.
Usage: python firing_reads.py REWARD_MODEL FAILURES D_W8_NPZ > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_reward.detector import detector_ending
from sefm_sim_bridge.envs import make_env
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline
from sefm_trainer.pretrain import _on_board
from sefm_trainer.sft import chain_places

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
tokenizer = model.embodiment.action
fails = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success is False][:100]
with np.load(sys.argv[3]) as z:
    first = int(len(z["successes"]) - len(fails))
    d_fail = [z[f"ep{first + i}"] for i in range(len(fails))]
env = make_env("block2block", image_size=(96, 96), max_steps=200)
rows = []
with torch.no_grad():
    for ep, d in zip(fails, d_fail, strict=True):
        fired = detector_ending(d, 3.0)
        if fired is None:
            continue
        o, _ = env.reset(seed=ep.meta.seed)
        for t in range(fired):
            o, *_ = env.step(ep.actions[t])
        task = env.task
        truth = _on_board(chain_places(env.object_positions(), o["effector"], task.obj, task.target_obj, None)[None])[0]
        frames, states = timeline(ep)
        ts = range(max(fired - 7, 0), fired + 1)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
        said = np.median(tokenizer.decode_places(model.said_places(obs)), axis=0)
        read = _on_board(said[None])[0]
        rows.append({
            "seed": ep.meta.seed, "t": fired, "d": round(float(d[fired]), 2),
            "true_block_to_target_m": round(float(np.linalg.norm(truth[0] - truth[1])), 3),
            "read_block_to_target_m": round(float(np.linalg.norm(read[0] - read[1])), 3),
            "block_read_off_m": round(float(np.linalg.norm(read[0] - truth[0])), 3),
            "target_read_off_m": round(float(np.linalg.norm(read[1] - truth[1])), 3),
        })  # fmt: skip
env.close()
read = np.array([r["read_block_to_target_m"] for r in rows])
print(json.dumps({
    "reward_model": sys.argv[1], "firings": len(rows),
    "read_within_5cm": int((read <= 0.05).sum()), "read_within_7cm": int((read <= 0.07).sum()),
    "median_read_m": float(np.median(read)),
    "median_true_m": float(np.median([r["true_block_to_target_m"] for r in rows])), "rows": rows,
}, indent=1))  # fmt: skip
