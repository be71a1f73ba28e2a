"""How right a reasoning policy's chain is (EFMConfig.reason): on held-out demonstration steps,
how often each place it says (the named block, its target, the effector) lies within one block
width of the truth, and how often the action it then takes matches the demonstrator's signs.
Beside them each slot's accuracy when every earlier slot is the truth (teacher forcing, what
training optimises): which digits of a place, and which action tokens, are learned at all.
The same forced accuracy is scored twice more with the images changed and the true places kept:
another step's images (``rolled``) and the current frame in place of the previous one
(``still``). Action tokens that hold up under both come from the places; ones that fall with
``still`` read the last motion off the frame pair and copy it (the copycat shortcut of
imitation from frame histories), which a policy acting on its own motion cannot use.

Prints one JSON object. Usage:
  python benchmarks/reasoning_probe.py --checkpoint runs/sft_b2b4_reason/best_bc --data runs/b2b4_obj [--steps 256]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.losses import images_rolled
from sefm_sim_bridge.scene import board_point
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.sft import Data, SFTConfig, places_at

PLACES = ("object", "target", "effector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="demonstrations that record objects (the Stage 1 data)")
    parser.add_argument("--steps", type=int, default=256, help="validation steps to score")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="episodes held out for scoring (near 1 for a fresh folder)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load_checkpoint(args.checkpoint).eval()
    if not policy.config.reason:
        raise SystemExit(f"{args.checkpoint} does not reason (EFMConfig.reason is false)")
    data = Data(SFTConfig(data=args.data, out="unused", reason=True, val_fraction=args.val_fraction))
    picks = np.random.default_rng(0).permutation(len(data.val))[: args.steps]
    steps = [data.val[int(i)] for i in picks]
    data.tokenizer = policy.embodiment.action
    forced = {"true": [], "rolled": [], "still": []}
    hits, signs = np.zeros((len(steps), len(PLACES)), bool), []
    for start in range(0, len(steps), 64):
        chunk = steps[start : start + 64]
        observations, tokens = data.batch("bc", data.val, picks[start : start + 64])
        variants = {
            "true": observations,
            "rolled": images_rolled(observations),
            "still": [replace(o, images=(o.images[0], o.images[0])) for o in observations],
        }
        for name, shown in variants.items():
            with torch.no_grad():
                dist = policy.action_distributions(shown, torch.as_tensor(tokens))
            forced[name].append(dist.argmax(-1).numpy() == tokens)
        sample = policy.sample_actions([s.observation for s in chunk], greedy=True)
        said = policy.embodiment.action.decode_places(sample.tokens)
        for k, (s, where, action) in enumerate(zip(chunk, said, sample.actions, strict=True)):
            truth = places_at(data.val.episodes[s.episode], s.t)
            said_board = np.array([board_point(*p) for p in where])
            true_board = np.array([board_point(*p) for p in truth])
            hits[start + k] = np.linalg.norm(said_board - true_board, axis=1) <= POINT_TOLERANCE
            signs.append(np.sign(np.round(action, 3)) == np.sign(np.round(s.action, 2)))
    print(json.dumps({
        "checkpoint": args.checkpoint,
        "steps": len(steps),
        "within_a_block_width": {p: round(float(hits[:, i].mean()), 3) for i, p in enumerate(PLACES)},
        "all_three_right": round(float(hits.all(1).mean()), 3),
        "action_signs_match_demonstrator": round(float(np.mean(signs)), 3),
        "place_radices": policy.config.place_radices,
        "teacher_forced_slot_accuracy": np.round(np.concatenate(forced["true"]).mean(0), 3).tolist(),
        "teacher_forced_slot_accuracy_images_rolled": np.round(np.concatenate(forced["rolled"]).mean(0), 3).tolist(),
        "teacher_forced_slot_accuracy_previous_frame_still": np.round(
            np.concatenate(forced["still"]).mean(0), 3
        ).tolist(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
