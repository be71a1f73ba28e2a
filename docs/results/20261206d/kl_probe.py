"""Throwaway probe (session 22): how far each policy is from Stage 1 in what it says, KL(policy ||
Stage 1) summed over a step's slots (as Stage 2's ``rl/kl``), on frames of 40 fresh demonstrations,
teacher-forced on Stage 1's greedy single-read tokens. Usage: python kl_probe.py STAGE1 DATA POLICY..."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_trainer.bag_reader import read_episode

torch.set_num_threads(1)
stage1 = load_checkpoint(sys.argv[1]).reconfigured(place_reads="single").eval()
observations = []
for path in sorted(p for p in Path(sys.argv[2]).iterdir() if p.is_dir())[:40]:
    ep = read_episode(path)
    frames = ep.frames[next(iter(ep.frames))]
    observations += [observation_at("language_table", frames, t, ep.meta.instruction) for t in range(0, ep.length, 3)]
out = {"frames": len(observations)}
with torch.no_grad():
    tokens = np.concatenate(
        [stage1.sample_actions(observations[i : i + 32], greedy=True).tokens for i in range(0, len(observations), 32)]
    )
    ref = torch.cat(
        [
            stage1.action_distributions(observations[i : i + 32], tokens[i : i + 32])
            for i in range(0, len(observations), 32)
        ]
    )
    for path in sys.argv[3:]:
        policy = load_checkpoint(path).reconfigured(place_reads="single").eval()
        dist = torch.cat(
            [
                policy.action_distributions(observations[i : i + 32], tokens[i : i + 32])
                for i in range(0, len(observations), 32)
            ]
        )
        valid = torch.isfinite(dist)
        p, q = dist.masked_fill(~valid, 0.0), ref.masked_fill(~valid, 0.0)
        kl = (valid * p.exp() * (p - q)).sum((-1, -2))
        flips = (dist.argmax(-1) != ref.argmax(-1)).any(-1).float().mean()
        out[path] = {
            "kl_mean": round(kl.mean().item(), 4),
            "kl_median": round(kl.median().item(), 4),
            "steps_with_an_argmax_changed": round(flips.item(), 3),
        }
print(json.dumps(out, indent=2))
