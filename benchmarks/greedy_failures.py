"""What a reasoning policy's greedy failures are: on each seed one greedy episode, replayed from its
tokens to read the simulator's truth at every step, and for every step which of the places the
chain said (the named block, its target, the effector) lie within a block width of the truth.

A failure that repeats shows here as a misread recurring every two or three steps while the
effector goes back and forth on the spot: the deterministic policy in a deterministic simulator
is in a cycle, which a sampled episode leaves by chance. Misreads are sized in the place
tokenizer's coarse cells (for the 96 px view, patches): one cell off is the coarse digit said
for the neighbouring cell, with the finer digits of the true one.

Prints one JSON object: place hit rates in successes and failures (all steps, last 30), the
sizes of the misreads, how far the effector got over a failure's last 30 steps against the path
it travelled, and each failure's last 40 steps as a string ("." all right, else the first place
misread: o object, t target, e effector). Usage:
  python benchmarks/greedy_failures.py --checkpoint checkpoints/stage1_b2b4_scenes/best_bc --task block2block4
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.envs import make_env
from sefm_sim_bridge.scene import board_point
from sefm_trainer.evaluate import success_summary
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.rollout import run_episodes
from sefm_trainer.sft import chain_places

TAIL = 30


def replayed(policy, task: str, episode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Said places, true places (T, 3, 2) in image units and effector board positions (T + 1, 2)."""
    env = make_env(task, render_images=False, max_steps=episode.length)
    env.reset(seed=episode.seed)
    said = policy.embodiment.action.decode_places(np.stack(episode.tokens))
    truth, effector = [], [env.effector.copy()]
    for tokens in episode.tokens:
        t = env.task
        truth.append(chain_places(env.object_positions(), env.effector, t.obj, t.target_obj, t.location))
        env.step(policy.embodiment.action.decode(tokens))
        effector.append(env.effector.copy())
    if env.success() != episode.ground_truth_success:
        raise RuntimeError(f"replaying seed {episode.seed} did not reproduce its outcome")
    env.close()
    return said, np.array(truth), np.array(effector)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--task", default="block2block4")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=600_000, help="first seed (600,000: drawn by neither practice nor eval)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--place-reads", choices=["single", "half_patch"], help="override the checkpoint's (EFMConfig)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_checkpoint(args.checkpoint).eval()
    if args.place_reads:
        policy = policy.reconfigured(place_reads=args.place_reads)
    if not policy.config.reason:
        raise SystemExit(f"{args.checkpoint} does not reason (EFMConfig.reason is false)")
    coarse = policy.config.place_radices[0]
    seeds = list(range(args.seed, args.seed + args.episodes))
    with torch.no_grad():
        episodes = run_episodes(policy, None, seeds, task_family=args.task, greedy=True, end_on="ground_truth")
    hits = {True: [], False: []}
    tails = {True: [], False: []}
    off_cells, straightness, patterns = [], [], {}
    for ep in episodes:
        said, truth, effector = replayed(policy, args.task, ep)
        board = lambda places: np.array([[board_point(*q) for q in step] for step in places])  # noqa: E731
        hit = np.linalg.norm(board(said) - board(truth), axis=-1) <= POINT_TOLERANCE
        ok = bool(ep.ground_truth_success)
        hits[ok].append(hit)
        tails[ok].append(hit[-TAIL:])
        off_cells.append((np.abs(said - truth).max(-1) * coarse)[~hit])
        if not ok:
            path = np.linalg.norm(np.diff(effector[-TAIL - 1 :], axis=0), axis=1).sum()
            straightness.append(float(np.linalg.norm(effector[-1] - effector[-TAIL - 1]) / max(path, 1e-9)))
            patterns[ep.seed] = "".join("." if h.all() else "ote"[int(np.argmin(h))] for h in hit[-40:])

    def rates(chunks: list[np.ndarray]) -> dict | None:
        if not chunks:
            return None
        h = np.concatenate(chunks)
        return {"object": h[:, 0].mean(), "target": h[:, 1].mean(), "effector": h[:, 2].mean(), "all": h.all(1).mean()}

    cells = np.concatenate(off_cells)
    round3 = lambda d: None if d is None else {k: round(float(v), 3) for k, v in d.items()}  # noqa: E731
    print(json.dumps({
        "checkpoint": args.checkpoint, "task": args.task, "seeds": [seeds[0], seeds[-1]],
        "place_reads": policy.config.place_reads,
        "greedy": success_summary(np.array([ep.ground_truth_success for ep in episodes])),
        "within_a_block_width": {
            "successes": round3(rates(hits[True])), "failures": round3(rates(hits[False])),
            f"successes_last_{TAIL}": round3(rates(tails[True])), f"failures_last_{TAIL}": round3(rates(tails[False])),
        },
        "misreads": len(cells),
        "misread_coarse_cells": {
            "under_half": round(float((cells < 0.5).mean()), 3) if len(cells) else None,
            "half_to_one_and_a_half": round(float(((cells >= 0.5) & (cells < 1.5)).mean()), 3) if len(cells) else None,
            "more": round(float((cells >= 1.5).mean()), 3) if len(cells) else None,
        },
        f"failures_effector_net_over_path_last_{TAIL}": {
            "median": round(float(np.median(straightness)), 3) if straightness else None,
            "below_0.25": round(float(np.mean(np.array(straightness) < 0.25)), 3) if straightness else None,
        },
        "failure_last_40_steps": patterns,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
