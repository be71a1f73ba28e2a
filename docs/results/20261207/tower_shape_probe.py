"""Does the base's vision tower tell a block's shape? The pretraining's own ObjectMap head (kept in
the trainer state) on held-out boards: per block, is its patch right, and when wrong, is the patch
chosen the other block of its colour? Usage:
  python docs/results/20261207/tower_shape_probe.py --checkpoint checkpoints/base_pointer \
      --state runs/base_pointer/trainer_state_00001050.safetensors --boards 100"""

import argparse
import json
import math

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_trainer.object_map import OBJECT_NAMES, ObjectMap, object_targets
from sefm_trainer.scene_chain import SceneChains
from sefm_trainer.trainer_state import load_trainer_extra

ap = argparse.ArgumentParser()
ap.add_argument("--checkpoint", required=True)
ap.add_argument("--state", required=True)
ap.add_argument("--boards", type=int, default=100)
args = ap.parse_args()
model = load_checkpoint(args.checkpoint).eval()
head = ObjectMap(model.backbone.config.vision_config.hidden_size)
head.load_state_dict(load_trainer_extra(args.state))
grid = math.isqrt(model.tokens_per_image)
chains = SceneChains(model.image_size)
observations, _, truth = chains.boards(1, np.arange(args.boards), "blocks8")
observations, truth = observations[:: chains.per_scene], truth[:: chains.per_scene]  # one per board
targets = np.stack([object_targets(objects, effector, grid) for objects, effector in truth])
with torch.no_grad():
    batches = [observations[i : i + 32] for i in range(0, len(observations), 32)]
    cells = torch.cat([head(model.image_features(batch)[:, 0])[0] for batch in batches])
said = cells.argmax(-1).numpy()
blocks = [k for k, n in enumerate(OBJECT_NAMES) if n not in ("banana", "effector")]
colour = {k: OBJECT_NAMES[k].split()[0] for k in blocks}
sister = {k: next(j for j in blocks if j != k and colour[j] == colour[k]) for k in blocks}
right = other_colour_twin = present = 0
for b in range(len(observations)):
    for k in blocks:
        if targets[b, k, 0] < 0:
            continue
        present += 1
        right += said[b, k] == targets[b, k, 0]
        other_colour_twin += said[b, k] == targets[b, sister[k], 0] and said[b, k] != targets[b, k, 0]
chains.close()
print(
    json.dumps(
        {
            "checkpoint": args.checkpoint,
            "boards": len(observations),
            "blocks": present,
            "right_patch": round(right / present, 3),
            "twin_patch": round(other_colour_twin / present, 3),
        }
    )
)
