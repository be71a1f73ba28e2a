"""Where a cycle's effector stands and where the chain says it stands: over the last 30 steps of
each failure failure_anatomy.py calls a cycle, replayed from its seed and commands, the effector's
offset across the named block -> target line, true and as said (the said places, the said line),
and each read's error across and along the true line (effector, named block). No model runs.
Usage: python cycle_geometry.py POLICY FAILURES_DIR ANATOMY_JSON > out.json
"""

import json
import sys
from pathlib import Path

import numpy as np

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.envs import make_env
from sefm_sim_bridge.scene import board_point
from sefm_trainer.bag_reader import load_episodes

TAIL = 30
tokenizer = load_checkpoint(sys.argv[1]).embodiment.action
classes = {r["seed"]: r["class"] for r in json.loads(Path(sys.argv[3]).read_text())["rows"]}
episodes = [e for e in load_episodes(sys.argv[2], progress=False).episodes if classes.get(e.meta.seed) == "cycle"]
offsets, errors = [], []
for ep in episodes:
    env = make_env("block2block", render_images=False, max_steps=ep.length)
    env.reset(seed=ep.meta.seed)
    task = env.task
    said = tokenizer.decode_places(ep.action_tokens)
    for t, action in enumerate(ep.actions):
        objects = env.object_positions()
        block, target, effector = objects[task.obj], objects[task.target_obj], env.effector
        if t >= ep.length - TAIL:
            along = (target - block) / np.linalg.norm(target - block)
            across = np.array([-along[1], along[0]])
            s_block, s_target, s_effector = (np.array(board_point(*q)) for q in said[t])
            s_along = (s_target - s_block) / np.linalg.norm(s_target - s_block)
            offsets.append(((effector - block) @ across, (s_effector - s_block) @ np.array([-s_along[1], s_along[0]])))
            errors.append([(s_effector - effector) @ across, (s_block - block) @ across,
                           (s_effector - effector) @ along, (s_block - block) @ along])  # fmt: skip
        env.step(action)
    env.close()
offsets, errors = np.abs(offsets) * 100, np.abs(errors) * 100
print(json.dumps({
    "cycles": len(episodes), "steps": len(offsets),
    "effector_across_the_line_cm_median": {"true": round(float(np.median(offsets[:, 0])), 2),
                                           "said": round(float(np.median(offsets[:, 1])), 2)},
    "read_error_cm_median": {
        name: round(float(np.median(errors[:, i])), 2)
        for i, name in enumerate(("effector_across", "block_across", "effector_along", "block_along"))
    },
}, indent=1))  # fmt: skip
