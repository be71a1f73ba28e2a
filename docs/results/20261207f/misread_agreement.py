"""Do two chains misread the same boards? On the policy's recorded failures (replayed from their
seeds for the true places), every K-th frame and each frame where the shipped detector first
fires (w = 8, s = 3, from detector_bar.py's d arrays): the named block's and its target's places
said by each model (five reads), each right when within one block width of the truth, as the
Stage 0 probe counts. If a chain trained apart misreads other boards than the reward model's, a
reward model made from it is the rung to climb.
Usage: python misread_agreement.py FAILURES D_W8_NPZ K MODEL [MODEL ...] > out.json
"""

import json
import sys

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_reward.detector import detector_ending
from sefm_sim_bridge.envs import make_env
from sefm_trainer.bag_reader import load_episodes
from sefm_trainer.dataset import timeline
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.pretrain import _on_board
from sefm_trainer.sft import chain_places

torch.set_num_threads(1)
fails = [e for e in load_episodes(sys.argv[1], progress=False).episodes if e.meta.success is False][:100]
with np.load(sys.argv[2]) as z:
    n_demos = int(len(z["successes"]) - len(fails))
    d_fail = [z[f"ep{n_demos + i}"] for i in range(len(fails))]
every, paths = int(sys.argv[3]), sys.argv[4:]
models = [load_checkpoint(p).reconfigured(place_reads="half_patch").eval() for p in paths]
env = make_env("block2block", image_size=(96, 96), max_steps=200)
right = {p: {"named": [], "target": []} for p in paths}
firing = []
with torch.no_grad():
    for i, ep in enumerate(fails):
        fired = detector_ending(d_fail[i], 3.0)
        ts = sorted(set(range(0, ep.last_done + 1, every)) | ({fired} if fired is not None else set()))
        o, _ = env.reset(seed=ep.meta.seed)
        truth = []
        for t in range(max(ts) + 1):
            task = env.task
            truth.append(chain_places(env.object_positions(), o["effector"], task.obj, task.target_obj, None))
            if t < ep.meta.length:
                o, *_ = env.step(ep.actions[t])
        truth = _on_board(np.stack([truth[t] for t in ts]))
        frames, states = timeline(ep)
        obs = [observation_at(ep.meta.embodiment, frames, t, ep.meta.instruction, states) for t in ts]
        for p, m in zip(paths, models, strict=True):
            said = _on_board(m.embodiment.action.decode_places(m.said_places(obs)))
            ok = np.linalg.norm(said - truth, axis=-1) <= POINT_TOLERANCE
            right[p]["named"].append(ok[:, 0])
            right[p]["target"].append(ok[:, 1])
        if fired is not None:
            k = ts.index(fired)
            firing.append({"seed": ep.meta.seed, "t": fired} | {p: bool(right[p]["named"][-1][k]) for p in paths})
        print(f"{i + 1}/{len(fails)}", file=sys.stderr, flush=True)
env.close()
out = {"failures": len(fails), "every": every, "models": paths}
for place in ("named", "target"):
    ok = {p: np.concatenate(right[p][place]) for p in paths}
    out[place] = {"frames": len(ok[paths[0]])} | {p: float(ok[p].mean()) for p in paths}
    if len(paths) > 1:
        a, b = ok[paths[0]], ok[paths[1]]
        out[place]["both_wrong"] = float((~a & ~b).mean())
        out[place]["second_right_where_first_wrong"] = float(b[~a].mean()) if (~a).any() else None
out["first_firings_s3_w8"] = firing
out["named_right_at_first_firing"] = {p: float(np.mean([f[p] for f in firing])) for p in paths}
print(json.dumps(out, indent=1))
