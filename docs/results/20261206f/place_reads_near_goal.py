"""Where the reward model's own places go wrong near the goal: on demonstrations held past their
goal, each chain slot said (five reads) against the true place, by steps to go, and what a
misread (further off than a block's width) does to d.
Usage: python place_reads_near_goal.py REWARD_MODEL EPISODES N > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline
from sefm_trainer.sft import places_at

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
episodes = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success][: int(sys.argv[3])]
tokenizer = model.embodiment.action
SLOTS = ("object", "target", "effector")
BLOCK_CELLS = 1  # a cell is 4 px of the 96 px view (3.0 cm across the board, 2.2 cm along it); a block is 4.4 cm
rows = []  # (steps to go, cells off per slot (3,), d told, d said)
with torch.no_grad():
    for ep in episodes:
        frames, states = timeline(ep)
        ts = range(ep.last_done + 1)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
        true = np.stack([tokenizer.encode(np.zeros(2), places_at(ep, t)) for t in ts])
        said = model.said_places(obs)
        off = np.abs(tokenizer.decode_places(said) - tokenizer.decode_places(true))
        cells = np.rint(off.max(-1) * tokenizer.place.cells)  # Chebyshev distance in cells, per slot
        told = (model.steps_to_go_log_probs(obs, true).exp() @ model.steps_centres).numpy()
        own = (model.steps_to_go_log_probs(obs, said).exp() @ model.steps_centres).numpy()
        for i, t in enumerate(ts):
            rows.append((ep.goal_at - t, cells[i].tolist(), float(told[i]), float(own[i])))
out = {"reward_model": sys.argv[1], "episodes": len(episodes), "by_steps_to_go": {}}
for k in range(-6, 8):
    sel = [r for r in rows if r[0] == k]
    cells = np.array([r[1] for r in sel])
    told, own = np.array([r[2] for r in sel]), np.array([r[3] for r in sel])
    wrong = (cells > BLOCK_CELLS).any(1)
    out["by_steps_to_go"][k] = {
        "frames": len(sel),
        "median_cells_off": {n: float(np.median(cells[:, j])) for j, n in enumerate(SLOTS)},
        "slot_more_than_a_block_off": {n: float((cells[:, j] > BLOCK_CELLS).mean()) for j, n in enumerate(SLOTS)},
        "slot_3_cells_or_more_off": {n: float((cells[:, j] >= 3).mean()) for j, n in enumerate(SLOTS)},
        "any_slot_more_than_a_block_off": float(wrong.mean()),
        "median_d_told": float(np.median(told)),
        "median_d_own_when_read_right": float(np.median(own[~wrong])) if (~wrong).any() else None,
        "median_d_own_when_misread": float(np.median(own[wrong])) if wrong.any() else None,
    }
print(json.dumps(out, indent=1))
