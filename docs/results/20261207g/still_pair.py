"""Is the previous frame what pulls a cycle's named block towards the effector? The policy asked
again on the last 20 frames of the first 12 cycles (failure_anatomy.py), once with each frame and
the one before it as it acted, once with the frame shown twice (a still pair), against the places
it recorded: the named block's read error along the block -> effector direction (cm).
Usage: python still_pair.py POLICY FAILURES_DIR ANATOMY_JSON > out.json
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_policy.prompts import Observation
from sefm_sim_bridge.envs import make_env
from sefm_sim_bridge.scene import board_point
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline

torch.set_num_threads(1)
model = load_checkpoint(sys.argv[1]).eval()
tokenizer = model.embodiment.action
classes = {r["seed"]: r["class"] for r in json.loads(Path(sys.argv[3]).read_text())["rows"]}
episodes = [e for e in load_episodes(sys.argv[2], progress=False).episodes if classes.get(e.meta.seed) == "cycle"][:12]
pulls = {"recorded": [], "as_acted": [], "still_pair": []}
for ep in episodes:
    env = make_env("block2block", render_images=False, max_steps=ep.length)
    env.reset(seed=ep.meta.seed)
    task = env.task
    frames, states = timeline(ep)
    truth = []
    for action in ep.actions:
        truth.append((env.object_positions()[task.obj], env.effector.copy()))
        env.step(action)
    env.close()
    steps = list(range(ep.length - 20, ep.length))
    observations = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in steps]
    still = [Observation(images=(o.images[0], o.images[0]), instruction=o.instruction) for o in observations]
    with torch.no_grad():
        said = {
            "recorded": tokenizer.decode_places(ep.action_tokens[steps]),
            "as_acted": tokenizer.decode_places(model.said_places(observations)),
            "still_pair": tokenizer.decode_places(model.said_places(still)),
        }
    for k, t in enumerate(steps):
        block, effector = truth[t]
        way = (effector - block) / np.linalg.norm(effector - block)
        for name, places in said.items():
            pulls[name].append((np.array(board_point(*places[k][0])) - block) @ way * 100)
print(json.dumps({
    "cycles": len(episodes), "frames": len(pulls["recorded"]),
    "named_block_read_towards_effector_cm": {
        name: {"median": round(float(np.median(v)), 2), "mean": round(float(np.mean(v)), 2)}
        for name, v in pulls.items()
    },
}, indent=1))  # fmt: skip
