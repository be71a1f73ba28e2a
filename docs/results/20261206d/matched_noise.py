"""Throwaway control (session 22): Stage 1's weights moved as far as Stage 2 moved them, in a random
direction. Each trained tensor gets Gaussian noise scaled to the norm of that tensor's change between
Stage 1 and a Stage 2 policy, so the copy differs from Stage 1 by as much, tensor by tensor, but
learns nothing. Its greedy evaluation on the same seeds says how many outcomes a change of that size
flips by itself. A random direction changes what the policy says far less than a learned one of the
same norm, so SCALE (default 1) multiplies every tensor's noise, to match the KL to Stage 1 instead
(kl_probe.py). Usage: python matched_noise.py STAGE1 STAGE2 OUT [SCALE]"""

import sys

import torch

from sefm_policy.checkpoint import load_checkpoint, save_checkpoint

stage1, stage2 = load_checkpoint(sys.argv[1]), load_checkpoint(sys.argv[2])
moved = dict(stage2.named_parameters())
generator = torch.Generator().manual_seed(0)
scale = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
changed = 0
with torch.no_grad():
    for name, p in stage1.named_parameters():
        step = (moved[name] - p).norm()
        if step == 0:
            continue
        noise = torch.randn(p.shape, generator=generator)
        p.add_(noise * scale * step / noise.norm())
        changed += 1
save_checkpoint(stage1, sys.argv[3])
print(f"{changed} tensors moved by {scale} x their Stage 2 change's norm in a random direction -> {sys.argv[3]}")
