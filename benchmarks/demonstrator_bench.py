"""Scripted demonstrator success per task family over seeded episodes (default noise; LanguageTable
100 steps, ALOHA insertion 25 chunk steps).

Prints one JSON object. Usage: python benchmarks/demonstrator_bench.py [--episodes 200]
"""

from __future__ import annotations

import argparse
import json

from tqdm import tqdm

from sefm_sim_bridge.aloha_demonstrator import InsertionDemonstrator
from sefm_sim_bridge.demonstrator import PushDemonstrator
from sefm_sim_bridge.envs import TASK_FAMILIES, embodiment_of, make_env, run_demonstration
from sefm_trainer.evaluate import wilson_interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--families", nargs="+", default=list(TASK_FAMILIES), choices=TASK_FAMILIES)
    args = parser.parse_args()
    result = {}
    for family in args.families:
        aloha = embodiment_of(family) == "aloha"
        env = make_env(family, render_images=False, max_steps=25 if aloha else 100)
        demo = InsertionDemonstrator() if aloha else PushDemonstrator()
        solved, lengths = 0, []
        for seed in tqdm(range(args.episodes), desc=family, unit="ep"):
            info = run_demonstration(env, demo, seed)
            solved += info["success"]
            lengths.append(info["steps"])
        env.close()
        result[family] = {
            "episodes": args.episodes,
            "success_rate": solved / args.episodes,
            "wilson95": [round(x, 3) for x in wilson_interval(solved, args.episodes)],
            "mean_length": sum(lengths) / len(lengths),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
