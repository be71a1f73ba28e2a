"""What the shipped Stage 1's greedy failures are, from their recordings alone (no model run): each
failure replayed from its seed and recorded commands, with the places its chain said (its recorded
tokens) against the simulator's truth at every step. Each failure gets one class, in this order:

- wrong block: another block ends nearer the target than the named one and within 7 cm of it;
- misread: the named block or its target is said more than a block width off in over a quarter of
  the steps (the chain looks elsewhere for long stretches);
- cycle: over the last 30 steps the effector's net displacement is under a quarter of its path
  (it shuttles on the spot) while the named block is still more than 5 cm from its target;
- slow: the named block ended nearer its target than it started, but not within 5 cm;
- other.

Prints one JSON object: the classes' counts, and per failure the class, the misread shares, the
named block's start / closest / final distance to its target, the effector's straightness, and how
far the named block is read towards the effector while it stands 4-12 cm away (median, cm).
Usage: python failure_anatomy.py POLICY FAILURES_DIR [N] > out.json  (POLICY: the checkpoint that acted)
"""

import json
import sys

import numpy as np

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.envs import make_env
from sefm_sim_bridge.scene import board_point
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.sft import chain_places

TAIL, NEAR_M, NEAR = 30, 0.07, (0.04, 0.12)


def board(places: np.ndarray) -> np.ndarray:
    return np.array([[board_point(*q) for q in step] for step in places])


def anatomy(ep, tokenizer) -> dict:
    env = make_env("block2block", render_images=False, max_steps=ep.length)
    env.reset(seed=ep.meta.seed)
    task = env.task
    said = tokenizer.decode_places(ep.action_tokens)
    truth, gaps, effector, pulls = [], [], [env.effector.copy()], []
    for t, action in enumerate(ep.actions):
        objects = env.object_positions()
        truth.append(chain_places(objects, env.effector, task.obj, task.target_obj, None))
        gaps.append(np.linalg.norm(objects[task.obj] - objects[task.target_obj]))
        beside = env.effector - objects[task.obj]
        if NEAR[0] <= np.linalg.norm(beside) < NEAR[1]:
            read = np.array(board_point(*said[t][0])) - objects[task.obj]
            pulls.append(read @ beside / np.linalg.norm(beside))
        env.step(action)
        effector.append(env.effector.copy())
    final = env.object_positions()
    gaps.append(np.linalg.norm(final[task.obj] - final[task.target_obj]))
    if env.success():
        raise RuntimeError(f"seed {ep.meta.seed} replays to a success; it was recorded as a failure")
    env.close()
    off = np.linalg.norm(board(said) - board(np.array(truth)), axis=-1) > POINT_TOLERANCE
    nearest_other = min(
        np.linalg.norm(p - final[task.target_obj]) for n, p in final.items() if n not in (task.obj, task.target_obj)
    )
    path = np.linalg.norm(np.diff(np.array(effector[-TAIL - 1 :]), axis=0), axis=1).sum()
    straight = float(np.linalg.norm(effector[-1] - effector[-TAIL - 1]) / max(path, 1e-9))
    block_off, target_off = float(off[:, 0].mean()), float(off[:, 1].mean())
    if nearest_other < gaps[-1] and nearest_other < NEAR_M:
        kind = "wrong block"
    elif max(block_off, target_off) > 0.25:
        kind = "misread"
    elif straight < 0.25:
        kind = "cycle"
    elif gaps[-1] < gaps[0]:
        kind = "slow"
    else:
        kind = "other"
    return {
        "seed": ep.meta.seed, "class": kind, "named_block_misread": round(block_off, 3),
        "target_misread": round(target_off, 3), "start_m": round(float(gaps[0]), 3),
        "closest_m": round(float(min(gaps)), 3), "final_m": round(float(gaps[-1]), 3),
        "nearest_other_block_to_target_m": round(float(nearest_other), 3),
        "named_block_read_towards_effector_cm": round(float(np.median(pulls)) * 100, 2) if pulls else None,
        f"effector_net_over_path_last_{TAIL}": round(straight, 3),
    }  # fmt: skip


episodes = [e for e in load_episodes(sys.argv[2], progress=False).episodes if e.meta.success is False]
episodes = episodes[: int(sys.argv[3])] if len(sys.argv) > 3 else episodes
tokenizer = load_checkpoint(sys.argv[1]).embodiment.action
rows = [anatomy(ep, tokenizer) for ep in episodes]
kinds = [r["class"] for r in rows]
print(json.dumps({
    "failures": len(rows), "classes": {k: kinds.count(k) for k in dict.fromkeys(sorted(kinds))},
    "median_closest_m": float(np.median([r["closest_m"] for r in rows])),
    "named_block_read_towards_effector_cm_median_by_class": {
        k: float(np.median([r["named_block_read_towards_effector_cm"] for r in rows
                            if r["class"] == k and r["named_block_read_towards_effector_cm"] is not None] or [np.nan]))
        for k in dict.fromkeys(sorted(kinds))
    },
    "rows": rows,
}, indent=1))  # fmt: skip
