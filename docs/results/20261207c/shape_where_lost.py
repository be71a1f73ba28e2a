"""Where does the base lose the shape word? Linear probes on a frozen checkpoint's 8-block boards:
the shape of the block at a patch, read off (a) the tower's features and (b) the decoder's last
states of that patch (what the pointer's keys read), and the named block's shape read off (c) the
state saying the object's coarse row and (d) the pointer's query built from it; the named block's
colour off (c) and (d) beside them, and the target's shape and colour off its own row's query. Boards are split
in two: probes fit on the first half, scored on the second. Usage:
  python docs/results/20261207c/shape_where_lost.py --checkpoint checkpoints/base_pointer --boards 600"""

import argparse
import json
import math

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.scene import BLOCKS, image_point
from sefm_trainer.object_map import OBJECT_NAMES, object_targets
from sefm_trainer.scene_chain import SceneChains

SHAPES = sorted({shape for _, shape in BLOCKS})
COLOURS = sorted({colour for colour, _ in BLOCKS})


def fit_and_score(x: torch.Tensor, y: torch.Tensor, half: int, steps: int = 400, classes: int = 4) -> float:
    """A linear softmax probe fitted on rows [:half], its accuracy on rows [half:]."""
    x = (x - x[:half].mean(0)) / (x[:half].std(0) + 1e-6)
    probe = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(probe(x[:half]), y[:half]).backward()
        opt.step()
    return float((probe(x[half:]).argmax(-1) == y[half:]).float().mean())


ap = argparse.ArgumentParser()
ap.add_argument("--checkpoint", required=True)
ap.add_argument("--boards", type=int, default=600)
args = ap.parse_args()
torch.manual_seed(0)
model = load_checkpoint(args.checkpoint).eval()
grid = math.isqrt(model.tokens_per_image)
chains = SceneChains(model.image_size)
observations, digits = chains.batch(model.embodiment.action, 1, np.arange(args.boards), "blocks8")
_, places, truth = chains.boards(1, np.arange(args.boards), "blocks8")
patch_tower, patch_decoder, patch_label, board_of_patch = [], [], [], []
slot_state, query, named_label, named_colour = [], [], [], []
target_query, target_label, target_colour = [], [], []
with torch.no_grad():
    for i in range(0, len(observations), 32):
        obs = observations[i : i + 32]
        tower = model.image_features(obs)[:, 0]
        images, prompt, words, slots = model.pointer_inputs(obs, digits[i : i + 32])
        q = model.pointer.queries(slots[:, 0], (prompt, words))
        q_target = model.pointer.queries(slots[:, 2], (prompt, words))
        for j in range(len(obs)):
            objects, effector = truth[i + j]
            targets = object_targets(objects, effector, grid)
            for k, name in enumerate(OBJECT_NAMES[:8]):
                if targets[k, 0] >= 0:
                    patch_tower.append(tower[j, targets[k, 0]])
                    patch_decoder.append(images[j, targets[k, 0]])
                    patch_label.append(SHAPES.index(name.split()[1]))
                    board_of_patch.append(i + j)
            named = min(objects, key=lambda n: np.linalg.norm(np.subtract(image_point(objects[n]), places[i + j, 0])))
            slot_state.append(slots[j, 0])
            query.append(q[j])
            named_label.append(SHAPES.index(named.split()[1]))
            named_colour.append(COLOURS.index(named.split()[0]))
            target = min(objects, key=lambda n: np.linalg.norm(np.subtract(image_point(objects[n]), places[i + j, 1])))
            target_query.append(q_target[j])
            target_label.append(SHAPES.index(target.split()[1]))
            target_colour.append(COLOURS.index(target.split()[0]))
chains.close()
boards_half = args.boards // 2
half_patch = int(np.searchsorted(np.array(board_of_patch), boards_half))
y_patch, y_named, y_colour = torch.tensor(patch_label), torch.tensor(named_label), torch.tensor(named_colour)
half_q = len(named_label) // 2
print(
    json.dumps(
        {
            "checkpoint": args.checkpoint,
            "boards": args.boards,
            "chance": 1 / len(SHAPES),
            "patch_shape_from_tower": fit_and_score(torch.stack(patch_tower), y_patch, half_patch),
            "patch_shape_from_decoder_states": fit_and_score(torch.stack(patch_decoder), y_patch, half_patch),
            "named_shape_from_row_slot_state": fit_and_score(torch.stack(slot_state), y_named, half_q),
            "named_shape_from_pointer_query": fit_and_score(torch.stack(query), y_named, half_q),
            "named_colour_from_row_slot_state": fit_and_score(torch.stack(slot_state), y_colour, half_q),
            "named_colour_from_pointer_query": fit_and_score(torch.stack(query), y_colour, half_q),
            "target_shape_from_pointer_query": fit_and_score(
                torch.stack(target_query), torch.tensor(target_label), half_q
            ),
            "target_colour_from_pointer_query": fit_and_score(
                torch.stack(target_query), torch.tensor(target_colour), half_q
            ),
        }
    )
)
