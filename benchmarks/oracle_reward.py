"""Stage 2 with a reward model that sees perfectly: does REINFORCE improve a policy on CPU?

A diagnostic, not the method. The learned steps-to-go model of the tiny default does not read
its frames (`sefm reward calibrate` shows d flat at every step), so a null Stage 2 result cannot
tell a broken loop from a blind reward. Here d(o, g) comes from the simulator's true state: a
least-squares fit (non-negative weights) of the demonstrator's steps-to-go on the
(effector-to-object, object-to-goal) distances. Practice runs through the real Stage 2 library
(``self_improve``); only the source relabels each episode by replaying its actions from its
seed. Episodes end on ground-truth success (a perfect detector). Prints JSON: the fit, and greedy
success before, after the last loop and at the loop the moving window kept (Wilson 95%).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.demonstrator import PushDemonstrator
from sefm_sim_bridge.envs import make_env
from sefm_trainer.evaluate import evaluate
from sefm_trainer.rollout import run_episodes
from sefm_trainer.stage2 import GymSource, Stage2Config, self_improve


def state_features(env) -> np.ndarray:
    positions = env.object_positions()
    obj = positions[env.task.obj]
    return np.array([np.linalg.norm(env.effector - obj), np.linalg.norm(obj - env.task.goal_point(positions)), 1.0])


def fit_oracle(family: str, episodes: int) -> tuple[np.ndarray, float]:
    """Weights of steps-to-go ~ features over successful demonstrations; and their mean abs. error."""
    env, demo, X, y = make_env(family, render_images=False), PushDemonstrator(), [], []
    for seed in range(800_000, 800_000 + episodes):
        env.reset(seed=seed)
        demo.reset(seed)
        feats, done = [state_features(env)], False
        while not done:
            *_, terminated, truncated, _ = env.step(demo.act(env))
            feats.append(state_features(env))
            done = terminated or truncated
        if env.success():
            X += feats
            y += list(range(len(feats) - 1, -1, -1))
    X, y = np.array(X), np.array(y, dtype=np.float64)
    # Least squares with non-negative distance weights (further away never means fewer steps to go):
    # the best fit over the subsets of features, dropping a distance whose weight would go negative.
    best = None
    for used in ([0, 1, 2], [0, 2], [1, 2]):
        w = np.zeros(3)
        w[used], *_ = np.linalg.lstsq(X[:, used], y, rcond=None)
        err = float(np.abs(X @ w - y).mean())
        if (w[:2] >= 0).all() and (best is None or err < best[1]):
            best = (w, err)
    if best is None:
        raise RuntimeError("no fit with non-negative distance weights; fit on more episodes")
    return best


class OracleSource(GymSource):
    """Practice in simulation; every frame's d read off the true state of a replay of the episode."""

    end_on = "ground_truth"

    def __init__(self, cfg: Stage2Config, weights: np.ndarray, pool: list[int] | None = None) -> None:
        super().__init__(cfg)
        self.weights, self.pool = weights, pool
        self.replay = make_env(cfg.task_family, render_images=False, max_steps=cfg.max_steps)

    def next_seeds(self) -> list[int]:
        """Without a pool, fresh seeds; with one, its seeds over and over."""
        if self.pool is None:
            return super().next_seeds()
        seeds = [self.pool[(self.next_seed + i) % len(self.pool)] for i in range(self.cfg.envs)]
        self.next_seed += self.cfg.envs
        return seeds

    def distances(self, policy, ep) -> list[float]:
        self.replay.reset(seed=ep.seed)
        d = [float(state_features(self.replay) @ self.weights)]
        for tokens in ep.tokens:
            self.replay.step(policy.embodiment.action.decode(tokens))
            d.append(float(state_features(self.replay) @ self.weights))
        if self.replay.success() != ep.ground_truth_success:
            raise RuntimeError(f"replaying seed {ep.seed} did not reproduce the episode's outcome")
        return [max(x, 0.0) for x in d]

    def rollout(self, policy, detector, seeds):
        # The learned reward model is not read: its d would be replaced, and it costs a pass a frame.
        episodes = super().rollout(policy, None, seeds)
        for ep in episodes:
            ep.distances = self.distances(policy, ep)
            ep.detected_success = ep.ground_truth_success
        return episodes


def greedy_episodes(checkpoint: Path, seeds: list[int], task: str):
    return run_episodes(load_checkpoint(checkpoint), None, seeds, task_family=task, greedy=True, end_on="ground_truth")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage1", required=True, help="Stage 1 run folder (best_bc, best_steps)")
    p.add_argument("--task", default="banana")
    p.add_argument("--loops", type=int, default=20)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--minibatch", type=int, default=64, help="B: a loop practises N x B steps")
    p.add_argument("--coef", type=float, default=5e-2, help="c in -c R log p (paper: 5e-2; ~0 leaves only the anchors)")
    p.add_argument("--kl-coef", type=float, default=0.0, help="beta of KL(policy || Stage 1 policy)")
    p.add_argument("--clip", type=float, default=0.0, help="> 0: PPO's clipped ratio to the practising policy")
    p.add_argument("--reward", choices=["progress", "success"], default="progress")
    p.add_argument("--gamma", type=float, default=0.9, help="discount of the progress reward's return (paper: 0.9)")
    p.add_argument("--baseline", choices=["none", "greedy"], default="none", help="greedy: R minus a greedy run's")
    p.add_argument("--normalize-returns", action="store_true", help="R -> (R - mean) / std over each loop's buffer")
    p.add_argument(
        "--chain-temperature",
        type=float,
        default=0.0,
        help="> 0: sample and reinforce the place digits of the policy's practice_digits",
    )
    p.add_argument("--greedy-steps", type=int, default=0, help="practice leads greedily for 0..this many steps")
    p.add_argument("--demonstrations", help="episode folder to co-train on (Stage 1's data)")
    p.add_argument("--demo-coef", type=float, default=0.0, help="weight of behaviour cloning on it in every update")
    p.add_argument("--consensus-coef", type=float, default=0.0, help="train the target place toward its consensus")
    p.add_argument("--consensus-from", choices=["policy", "reward_model"], default="policy", help="who says it")
    p.add_argument("--max-steps", type=int, default=100, help="practice episode limit (evaluation keeps the task's)")
    p.add_argument("--fit-episodes", type=int, default=100)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--evaluate", choices=["both", "last", "best"], default="both", help="which Stage 2 policy to score")
    p.add_argument("--skip-stage1", action="store_true", help="do not evaluate the Stage 1 policy first")
    p.add_argument("--out", help="Stage 2 run folder (default: a temporary one)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="Stage 2 seed: practice seeds and sampling")
    p.add_argument(
        "--practice-failures",
        type=int,
        default=0,
        help="> 0: practise only on the seeds among this many from 500,000 where Stage 1 fails greedily",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    weights, fit_err = fit_oracle(args.task, args.fit_episodes)
    stage1 = Path(args.stage1)
    before = None
    if not args.skip_stage1:
        before = evaluate(load_checkpoint(stage1 / "best_bc"), None, args.eval_episodes, args.task)
    out = Path(args.out or tempfile.mkdtemp(prefix="oracle_stage2_"))
    cfg = Stage2Config(
        policy=str(stage1 / "best_bc"), reward_model=str(stage1 / "best_steps"), out=str(out), loops=args.loops,
        lr=args.lr, temperature=args.temperature, chain_temperature=args.chain_temperature, task_family=args.task,
        normalize_returns=args.normalize_returns, reward=args.reward, kl_coef=args.kl_coef, minibatch=args.minibatch,
        demonstrations=args.demonstrations, demo_coef=args.demo_coef, gamma=args.gamma, coef=args.coef,
        max_steps=args.max_steps, consensus_coef=args.consensus_coef,
        consensus_from=args.consensus_from, greedy_steps=args.greedy_steps, patience=0, baseline=args.baseline,
        seed=args.seed, clip=args.clip,
    )  # fmt: skip
    pool, pool_before = None, None
    if args.practice_failures:
        seeds = list(range(500_000, 500_000 + args.practice_failures))
        pool = [ep.seed for ep in greedy_episodes(stage1 / "best_bc", seeds, args.task) if not ep.ground_truth_success]
        pool_before = 0.0
    result = self_improve(cfg, source=OracleSource(cfg, weights, pool))
    pool_after = None
    if pool:
        pool_after = float(np.mean([ep.ground_truth_success for ep in greedy_episodes(out / "last", pool, args.task)]))
        said = f"{len(pool)} practised seeds: greedy success {pool_after:.3f} after the last loop (0 before)"
        print(said, flush=True)
    evaluations = {}
    for which in ("last", "best") if args.evaluate == "both" else (args.evaluate,):
        evaluations[which] = evaluate(load_checkpoint(out / which), None, args.eval_episodes, args.task)
        (out / f"eval_{which}.json").write_text(json.dumps(evaluations[which], indent=2) + "\n")  # seed by seed
    after, best = evaluations.get("last"), evaluations.get("best")
    keep = ("success_rate", "wilson95", "mean_length")
    print(json.dumps({
        "task": args.task, "oracle_fit_abs_err": fit_err, "oracle_weights": weights.tolist(),
        "loops": len(result["history"]), "extra_episodes": result["history"][-1]["extra_episodes"],
        "lr": args.lr, "temperature": args.temperature, "chain_temperature": args.chain_temperature,
        "normalize_returns": args.normalize_returns, "reward": args.reward,
        "kl_coef": args.kl_coef, "minibatch": args.minibatch, "demo_coef": args.demo_coef, "gamma": args.gamma,
        "coef": args.coef, "max_steps": args.max_steps, "greedy_steps": args.greedy_steps, "seed": args.seed,
        "baseline": args.baseline, "clip": args.clip,
        "consensus_coef": args.consensus_coef, "consensus_from": args.consensus_from,
        "practice_success_per_loop": [h["ground_truth_success"] for h in result["history"]],
        "stage1": before and {k: before[k] for k in keep}, "stage2_last": after and {k: after[k] for k in keep},
        "stage2_best": best and {k: best[k] for k in keep}, "best_loop": result["best_loop"], "out": str(out),
        "practice_pool": pool, "pool_greedy_success_before": pool_before, "pool_greedy_success_after": pool_after,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
