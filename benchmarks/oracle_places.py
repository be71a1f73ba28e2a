"""Does a reasoning policy act well once its places are right? Greedy closed-loop episodes in
which some of the chain's places (the named block, its target, the effector) are the simulator's
truth and the policy chooses the rest and the action tokens, one arm per set of told places on
the same seeds. If the told chain succeeds and the policy's own does not, seeing is what fails;
if both fail, acting from the places is; telling only the effector says what its place is worth.

Prints one JSON object. Usage:
  python benchmarks/oracle_places.py --checkpoint runs/sft_b2b4_reason/best_bc --task block2block4 \
      --episodes 100 --arms all effector own
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from tqdm import tqdm

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.embodiment import observation_at
from sefm_sim_bridge.envs import make_env, model_view
from sefm_trainer.evaluate import HELD_OUT_SEED, success_summary
from sefm_trainer.sft import chain_places


def told_places(env) -> np.ndarray:
    task = env.task
    return chain_places(env.object_positions(), env.effector, task.obj, task.target_obj, task.location)


# Which of the chain's places each arm tells: the named block, its target, the effector.
ARMS = {"all": (True, True, True), "blocks": (True, True, False), "effector": (False, False, True), "own": ()}


def run(policy, task_family: str, seeds: list[int], tell: tuple[bool, ...], max_steps: int) -> list[bool]:
    """Success per seed, all episodes stepped together."""
    size = (policy.image_size, policy.image_size)
    envs = [make_env(task_family, image_size=size, max_steps=max_steps) for _ in seeds]
    frames, instructions = [], []
    for env, seed in zip(envs, seeds, strict=True):
        obs, _ = env.reset(seed=seed)
        frames.append([model_view(obs)[0]])
        instructions.append(obs["instruction"])
    success = [False] * len(envs)
    live = list(range(len(envs)))
    place_slots = policy.embodiment.reasoning_slots
    per_place = len(policy.embodiment.action.place.slot_sizes)
    untold = np.repeat([not t for t in tell], per_place)
    for _ in tqdm(range(max_steps), desc=f"told {tell}", unit="step"):
        live = [i for i in live if not success[i]]
        if not live:
            break
        observations = [
            observation_at(policy.embodiment.name, frames[i], len(frames[i]) - 1, instructions[i], None) for i in live
        ]
        given = None
        if any(tell):
            places = np.stack([told_places(envs[i]) for i in live])
            given = policy.embodiment.action.place.encode(places).reshape(len(live), place_slots)
            given[:, untold] = -1
        sample = policy.sample_actions(observations, greedy=True, given=given)
        for i, action in zip(live, sample.actions, strict=True):
            obs, *_ = envs[i].step(action)
            frames[i].append(model_view(obs)[0])
            success[i] = envs[i].success()
    for env in envs:
        env.close()
    return success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--task", default="block2block4")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["all", "own"], help="places told per arm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_checkpoint(args.checkpoint).eval()
    if not policy.config.reason:
        raise SystemExit(f"{args.checkpoint} does not reason (EFMConfig.reason is false)")
    seeds = list(range(args.seed, args.seed + args.episodes))
    result = {"checkpoint": args.checkpoint, "task": args.task, "episodes": len(seeds)}
    for arm in args.arms:
        result[arm] = success_summary(run(policy, args.task, seeds, ARMS[arm], args.max_steps))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
