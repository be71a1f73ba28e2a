"""How often the greedy chain's target place is right at a step, and how often its episode's median is.

What Stage 2's self-training (``consensus_coef``, ``sefm_trainer.consensus``) can teach: where the
median of the target places said over an episode is right more often than single steps, it is a
label that corrects the policy's stray steps without ground truth. Scores whole held-out
demonstrations (``--val-fraction`` near 1 for a fresh folder); "right" is within one block width,
as ``benchmarks/reasoning_probe.py`` counts. Prints one JSON object. Usage: python
benchmarks/place_consensus.py --checkpoint checkpoints/stage1_b2b4_wide/best_bc --data runs/b2b4_fresh200
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.scene import board_point
from sefm_trainer.consensus import TARGET, check_policy, consensus_tokens
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.sft import Data, SFTConfig, places_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="demonstrations that record objects")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--val-fraction", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_checkpoint(args.checkpoint).eval()
    check_policy(policy)
    tokenizer = policy.embodiment.action
    index = Data(SFTConfig(data=args.data, out="unused", reason=True, val_fraction=args.val_fraction)).val
    by_episode = defaultdict(list)
    for i in range(len(index)):
        step = index[i]
        by_episode[step.episode].append(step)
    step_right, median_right, mostly_wrong = [], [], []
    for e in sorted(by_episode)[: args.episodes]:
        steps = by_episode[e]
        with torch.no_grad():
            said = policy.sample_actions([s.observation for s in steps], greedy=True).tokens
        truth = np.array([board_point(*places_at(index.episodes[e], s.t)[TARGET]) for s in steps])
        for tokens, right in ((said, step_right), (consensus_tokens(said, tokenizer), median_right)):
            where = np.array([board_point(*p) for p in tokenizer.decode_places(tokens)[:, TARGET]])
            right.append(np.linalg.norm(where - truth, axis=1) <= POINT_TOLERANCE)
        mostly_wrong.append(step_right[-1].mean() < 0.5)
    print(json.dumps({
        "checkpoint": args.checkpoint, "episodes": len(step_right), "steps": int(sum(map(len, step_right))),
        "target_right_per_step": round(float(np.concatenate(step_right).mean()), 3),
        "target_right_episode_median": round(float(np.concatenate(median_right).mean()), 3),
        "episodes_target_wrong_in_most_steps": round(float(np.mean(mostly_wrong)), 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
