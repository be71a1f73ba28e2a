"""Which block an 8-block chain points at when it names one (throwaway probe, session 19).

For held-out demonstration steps, the greedy chain's place of the named block and of its target
are matched to the nearest block on the board (within a block width, else "none"), and classed
against the block the words name: the same block, the other block of its colour, the other of its
shape, another block. Prints JSON. Usage:
python docs/results/20261206/confusions_probe.py --checkpoint DIR --data runs/b2b8_probe900k --steps 500
"""

import argparse
import json
from collections import Counter

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_sim_bridge.scene import board_point
from sefm_trainer.grounding import POINT_TOLERANCE
from sefm_trainer.sft import Data, SFTConfig


def kind(named: str, found: str | None) -> str:
    if found is None:
        return "none"
    if found == named:
        return "right"
    colour, shape = named.split()
    other_colour, other_shape = found.split()
    if colour == other_colour:
        return "same colour"
    if shape == other_shape:
        return "same shape"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_checkpoint(args.checkpoint).eval()
    data = Data(SFTConfig(data=args.data, out="unused", reason=True, val_fraction=0.99))
    picks = np.random.default_rng(0).permutation(len(data.val))[: args.steps]
    counts = {"object": Counter(), "target": Counter()}
    for start in range(0, len(picks), 64):
        chunk = [data.val[int(i)] for i in picks[start : start + 64]]
        sample = policy.sample_actions([s.observation for s in chunk], greedy=True)
        said = policy.embodiment.action.decode_places(sample.tokens)
        for s, where in zip(chunk, said, strict=True):
            episode = data.val.episodes[s.episode]
            blocks = {name: np.asarray(track[s.t]) for name, track in episode.objects.items()}
            for slot, role in enumerate(("object", "target")):
                named = episode.meta.extra["obj" if role == "object" else "target"]
                point = np.array(board_point(*where[slot]))
                name, gap = min(((n, np.linalg.norm(point - p[:2])) for n, p in blocks.items()), key=lambda x: x[1])
                counts[role][kind(named, name if gap <= POINT_TOLERANCE else None)] += 1
    n = len(picks)
    print(json.dumps({"checkpoint": args.checkpoint, "steps": n, **{
        role: {k: round(v / n, 3) for k, v in sorted(c.items())} for role, c in counts.items()
    }}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
