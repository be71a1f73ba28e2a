"""The success detector judged on a policy's own practice episodes, frame by frame.

``sefm reward calibrate`` scores s on demonstrations, which stop at their goal, so a firing a step
or two early has to be called right by a tolerance and nothing after a goal is ever seen. Here the
policy practises (sampling, as Stage 2 does; ``--greedy``: acting as evaluation does) on held-out
seeds and acts on ``--after-goal`` steps past the first frame where the simulator says the task is
done; every frame gets the frozen reward model's d and the simulator's verdict. A threshold is
right where the detector's first firing lands on a done frame
(``sefm_reward.calibration.score_on_practice``); the failed episodes count against it. Several
reward models are judged on the same episodes (the first one's d is read as they run, the others'
over their frames afterwards). Prints one JSON object (and writes it, with each episode's d and
verdicts, to --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_reward.calibration import sweep_on_practice
from sefm_reward.detector import StepsToGoDetector
from sefm_trainer.rollout import run_episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", required=True, help="policy checkpoint (e.g. a Stage 1 best_bc)")
    p.add_argument("--reward-model", nargs="+", required=True, help="frozen steps-to-go models (best_steps)")
    p.add_argument("--task", default="block2block")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=700_000, help="first seed; held out from practice and evaluation")
    p.add_argument("--after-goal", type=int, default=10, help="steps acted after the task is first done")
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--temperature", type=float, default=1.0, help="the action's sampling temperature (practice's)")
    p.add_argument("--greedy", action="store_true", help="act greedily, as evaluation does, instead of sampling")
    p.add_argument("--chain-temperature", type=float, default=0.0)
    p.add_argument("--min-precision", type=float, default=0.9)
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="JSON file for the result and every episode's d and verdicts")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_checkpoint(args.policy).eval()
    detectors = [StepsToGoDetector(load_checkpoint(path), success_threshold=0.0) for path in args.reward_model]
    episodes = run_episodes(
        policy,
        detectors[0],
        range(args.seed, args.seed + args.episodes),
        task_family=args.task,
        max_steps=args.max_steps,
        temperature=args.temperature,
        chain_temperature=args.chain_temperature,
        greedy=args.greedy,
        end_on="ground_truth",
        after_goal=args.after_goal,
        envs=args.envs,
        generator=torch.Generator().manual_seed(args.seed),
        progress="rollouts",
    )
    done = [np.asarray(ep.done) for ep in episodes]
    distances = {args.reward_model[0]: [np.asarray(ep.distances) for ep in episodes]}
    for path, detector in zip(args.reward_model[1:], detectors[1:], strict=True):
        distances[path] = [
            detector.episode_distances([ep.observation(t) for t in range(len(ep.frames))]) for ep in episodes
        ]
    thresholds = np.arange(0.5, 20.01, 0.5)
    sweeps = {path: sweep_on_practice(ds, done, thresholds, args.min_precision) for path, ds in distances.items()}
    print(json.dumps({"args": vars(args), "task_done": next(iter(sweeps.values()))["task_done"]}, indent=2))
    for path, result in sweeps.items():
        print(json.dumps({"reward_model": path, "recommended_threshold": result["recommended_threshold"]}))
        for score in result["scores"]:
            if score["threshold"] <= 8:
                print(json.dumps(score))
    if args.out:
        per_episode = [
            {"seed": ep.seed, "done": ep.done, "d": {path: [float(x) for x in ds[i]] for path, ds in distances.items()}}
            for i, ep in enumerate(episodes)
        ]
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "sweeps": sweeps, "per_episode": per_episode}, indent=1)
        )


if __name__ == "__main__":
    main()
