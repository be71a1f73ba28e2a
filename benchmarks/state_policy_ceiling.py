"""What seeing the places right is worth: a memoryless MLP from the chain's three true places
(the named block, its target, the effector; ``sft.chain_places``) to the demonstrator's action,
fitted on the same seeded demonstrations Stage 1 gets, then run closed loop on held-out seeds.
Beside it, the demonstrator itself with its push/approach switch recomputed every step (so
without memory): whether a function of those places alone can solve the task at all.
``--grids`` asks how precisely the blocks must be seen: the two block places are snapped to the
centres of an N x N grid over the image (8: the chain's coarse digits alone) while the effector
stays exact, as it would be read from the robot rather than seen (``--snap-effector`` snaps it too).

Prints one JSON object. Usage:
  python benchmarks/state_policy_ceiling.py --task block2block4 --demos 2000 --iters 5000 20000
  python benchmarks/state_policy_ceiling.py --iters 5000 --grids 8 16 32
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from tqdm import tqdm

from sefm_sim_bridge.demonstrator import PushDemonstrator
from sefm_sim_bridge.envs import make_env
from sefm_sim_bridge.language_table import MAX_DELTA
from sefm_trainer.evaluate import HELD_OUT_SEED, success_summary
from sefm_trainer.sft import chain_places


def places(env, grid: int = 0, snap_effector: bool = False) -> np.ndarray:
    """The chain's three places, flattened; with ``grid``, snapped to its cells' centres."""
    task = env.task
    where = chain_places(env.object_positions(), env.effector, task.obj, task.target_obj, task.location)
    if grid:
        snapped = (np.floor(where * grid).clip(0, grid - 1) + 0.5) / grid
        where = np.concatenate([snapped[:2], snapped[2:] if snap_effector else where[2:]])
    return where.reshape(-1)


def demonstrations(env, demos: int, see) -> tuple[np.ndarray, np.ndarray]:
    """(what ``see`` gives, action) of every step of seeds 0 .. demos-1, as `sefm datagen` records them."""
    demo, xs, ys = PushDemonstrator(), [], []
    for seed in tqdm(range(demos), desc="demonstrations", unit="ep"):
        env.reset(seed=seed)
        demo.reset(seed)
        done = False
        while not done:
            action = demo.act(env)
            xs.append(see(env))
            ys.append(action)
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return np.array(xs, np.float32), np.array(ys, np.float32)


def fit(x: np.ndarray, y: np.ndarray, iters: int, width: int = 512) -> torch.nn.Module:
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], width), torch.nn.GELU(),
        torch.nn.Linear(width, width), torch.nn.GELU(),
        torch.nn.Linear(width, width), torch.nn.GELU(),
        torch.nn.Linear(width, 2),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y) / MAX_DELTA
    for _ in tqdm(range(iters), desc=f"fit {iters}", unit="it"):
        i = torch.randint(0, len(xt), (512,))
        loss = ((net(xt[i]) - yt[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return net


def closed_loop(env, act, seeds, max_steps: int) -> dict:
    wins = []
    for seed in seeds:
        env.reset(seed=seed)
        for _ in range(max_steps):
            env.step(np.clip(act(env), -MAX_DELTA, MAX_DELTA))
            if env.success():
                break
        wins.append(env.success())
    return success_summary(wins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="block2block4")
    parser.add_argument("--demos", type=int, default=2000)
    parser.add_argument("--iters", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--grids", type=int, nargs="+", default=[0], help="grid cells per axis; 0: exact places")
    parser.add_argument("--snap-effector", action="store_true", help="snap the effector's place to the grid too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    env = make_env(args.task, render_images=False)
    seeds = range(HELD_OUT_SEED, HELD_OUT_SEED + args.episodes)
    memoryless = PushDemonstrator(noise_std=0.0, seed=0)

    def without_memory(e) -> np.ndarray:
        memoryless._pushing = False  # the switch decided afresh from the places alone
        return memoryless.act(e)

    result = {"task": args.task, "demos": args.demos, "episodes": args.episodes, "snap_effector": args.snap_effector}
    result["memoryless_demonstrator"] = closed_loop(env, without_memory, seeds, args.max_steps)
    for grid in args.grids:

        def see(e, grid=grid) -> np.ndarray:
            return places(e, grid, args.snap_effector).astype(np.float32)

        x, y = demonstrations(env, args.demos, see)
        result["steps"] = len(x)
        prefix = f"grid_{grid}_" if grid else ""
        for iters in args.iters:
            net = fit(x, y, iters)
            with torch.no_grad():
                rms = float(((net(torch.from_numpy(x)) * MAX_DELTA - torch.from_numpy(y)) ** 2).mean().sqrt())

            def act(e, net=net, see=see) -> np.ndarray:
                with torch.no_grad():
                    return net(torch.from_numpy(see(e))).numpy() * MAX_DELTA

            result[f"{prefix}mlp_{iters}_iters"] = {
                "train_rms_m": round(rms, 4),
                **closed_loop(env, act, seeds, args.max_steps),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
