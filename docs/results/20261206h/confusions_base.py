"""Which block a base's chain points at when asked for the named one on held-out 8-block boards:
the named block, the other block of its colour, the other of its shape, another, or none (no block
within one block width). Prints JSON. Usage: python confusions_base.py CHECKPOINT [QUESTIONS]"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.scene import board_point, image_point
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.scene_chain import SceneChains

torch.set_num_threads(2)
model = load_checkpoint(sys.argv[1]).eval()
count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
chains = SceneChains(model.image_size)
observations, places, truth = chains.boards(1, np.arange(count), "blocks8")
said = np.concatenate(
    [model.embodiment.action.decode_places(model.said_places(observations[i : i + 64])) for i in range(0, count, 64)]
)
chains.close()
tally = {"named": 0, "same colour": 0, "same shape": 0, "another": 0, "none": 0}
for where, true, (objects, _) in zip(said, places, truth, strict=True):
    named = min(objects, key=lambda n: np.linalg.norm(np.array(image_point(objects[n])) - true[0]))
    said_xy = np.array(board_point(*where[0]))
    nearest = min(objects, key=lambda n: np.linalg.norm(objects[n] - said_xy))
    if np.linalg.norm(objects[nearest] - said_xy) > POINT_TOLERANCE:
        tally["none"] += 1
    elif nearest == named:
        tally["named"] += 1
    elif nearest.split()[0] == named.split()[0]:
        tally["same colour"] += 1
    elif nearest.split()[1] == named.split()[1]:
        tally["same shape"] += 1
    else:
        tally["another"] += 1
print(json.dumps({"checkpoint": sys.argv[1], "questions": count, **{k: v / count for k, v in tally.items()}}))
