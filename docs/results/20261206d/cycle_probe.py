"""Throwaway probe (session 22): what a five-read 8-block failure with every place read within a
block width does step by step. For each seed: one greedy episode, replayed; per step the said and
true places (board metres: named block, target, effector), the action, and the distance from the
named block to its target. Usage: python cycle_probe.py SEED [SEED ...]"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.envs import make_env
from sefm_sim_bridge.scene import board_point
from sefm_trainer.rollout import run_episodes
from sefm_trainer.sft import chain_places

torch.set_num_threads(1)
policy = load_checkpoint("checkpoints/stage1_b2b8_pointer/best_bc").eval()
out = {}
for seed in map(int, sys.argv[1:]):
    (ep,) = run_episodes(policy, None, [seed], task_family="block2block", greedy=True, end_on="ground_truth")
    env = make_env("block2block", render_images=False, max_steps=ep.length)
    env.reset(seed=seed)
    said = policy.embodiment.action.decode_places(np.stack(ep.tokens))
    rows = []
    for t, tokens in enumerate(ep.tokens):
        task, pos = env.task, env.object_positions()
        truth = chain_places(pos, env.effector, task.obj, task.target_obj, task.location)
        board = lambda places: np.array([board_point(*q) for q in places])  # noqa: E731
        action = policy.embodiment.action.decode(tokens)
        rows.append(
            {
                "t": t,
                "said": np.round(board(said[t]), 3).tolist(),
                "true": np.round(board(truth), 3).tolist(),
                "action": np.round(action, 3).tolist(),
                "obj_to_target": round(float(np.linalg.norm(pos[task.obj] - pos[task.target_obj])), 3),
            }
        )
        env.step(action)
    out[seed] = {"instruction": ep.instruction, "success": ep.ground_truth_success, "last_steps": rows[-12:]}
print(json.dumps(out, indent=1))
