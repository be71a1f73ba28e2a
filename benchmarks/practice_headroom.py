"""Is there anything for practice to find? Where greedy fails, how often does sampling succeed?

REINFORCE can only raise greedy success on scenes where the sampling policy sometimes succeeds
while greedy fails: it reinforces what practice tried. On each seed this runs the policy once
greedily and ``--samples`` times as practice samples it (``--temperature`` for the action,
``--chain-temperature`` for a reasoning chain's coarse place digits), ground truth ending and
scoring every episode, and prints one JSON object: greedy and sampled success, sampled success
on the seeds greedy fails and on those it solves, and how many greedy failures some sample
solves (Wilson 95% intervals), and greedy success by step 25, 50, ... up to ``--max-steps`` (with
``--samples 0``, only that: how much of a failure is a slow success). Seeds from 600,000 by
default: neither practice (500,000) nor evaluation (1,000,000) draws them.

    python benchmarks/practice_headroom.py --checkpoint checkpoints/stage1_b2b4_wide/best_bc \\
        --task block2block4 --episodes 100 --samples 3 --chain-temperature 1.0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_trainer.evaluate import success_summary
from sefm_trainer.rollout import run_episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--task", default="block2block")
    p.add_argument("--episodes", type=int, default=100, help="seeds")
    p.add_argument("--samples", type=int, default=3, help="sampled episodes per seed (0: greedy only)")
    p.add_argument("--seed", type=int, default=600_000)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--chain-temperature", type=float, default=0.0)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.episodes < 1 or args.samples < 0:
        raise SystemExit("--episodes must be at least 1 and --samples at least 0")
    torch.set_num_threads(args.threads)
    policy = load_checkpoint(args.checkpoint).eval()
    seeds = list(range(args.seed, args.seed + args.episodes))
    common = dict(task_family=args.task, max_steps=args.max_steps, end_on="ground_truth")
    with torch.no_grad():
        greedy = run_episodes(policy, None, seeds, greedy=True, progress="greedy", **common)
        sampled = args.samples and run_episodes(
            policy, None, seeds * args.samples, temperature=args.temperature, chain_temperature=args.chain_temperature,
            generator=torch.Generator().manual_seed(0), progress="sampled", **common,
        )  # fmt: skip
    g = np.array([ep.ground_truth_success for ep in greedy])
    lengths = np.array([ep.length for ep in greedy])
    result = {
        "checkpoint": args.checkpoint, "task": args.task, "seeds": [seeds[0], seeds[-1]], "samples": args.samples,
        "temperature": args.temperature, "chain_temperature": args.chain_temperature, "greedy": success_summary(g),
        "greedy_success_by_step": {m: float((g & (lengths <= m)).mean()) for m in range(25, args.max_steps + 1, 25)},
        "greedy_success_lengths": sorted(lengths[g].tolist()),
    }  # fmt: skip
    if args.samples:
        s = np.array([ep.ground_truth_success for ep in sampled]).reshape(args.samples, args.episodes)
        result |= {
            "sampled": success_summary(s.ravel()),
            "sampled_where_greedy_fails": success_summary(s[:, ~g].ravel()) if (~g).any() else None,
            "sampled_where_greedy_succeeds": success_summary(s[:, g].ravel()) if g.any() else None,
            "greedy_failures_some_sample_solves": success_summary(s[:, ~g].any(0)) if (~g).any() else None,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
