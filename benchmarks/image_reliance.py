"""Does a Stage 1 checkpoint look at its camera? BC loss on held-out demonstration steps with
their own frames and with each step given another step's frames (same instruction, same target).

``image_gain`` (nats per action token) is the rise: about zero means the policy acts from the
instruction alone. ``blind_floor`` is the mean entropy of each action slot's token frequencies in
the training steps: what a policy that ignores its inputs reaches. Prints JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_trainer.sft import Data, SFTConfig, validate


def slot_entropy(tokens: np.ndarray) -> float:
    entropies = []
    for slot in tokens.T:
        p = np.unique(slot, return_counts=True)[1] / len(slot)
        entropies.append(float(-(p * np.log(p)).sum()))
    return float(np.mean(entropies))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/stage1_block2block/best_bc")
    ap.add_argument("--data", required=True, help="demonstration bags (sefm datagen)")
    ap.add_argument("--samples", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(args.checkpoint).eval()
    cfg = SFTConfig(data=args.data, out="-", objectives=["bc"], val_samples=args.samples, model=model.config)
    data = Data(cfg)
    data.tokenizer = model.embodiment.action
    val = validate(model, data, cfg)  # Stage 1's own validation: held-out steps, bc/image_gain
    train_tokens = np.concatenate([data.tokenizer.encode(e.actions) for e in data.train.episodes])
    print(json.dumps({
        "benchmark": "image_reliance",
        "checkpoint": args.checkpoint,
        "validation_steps": min(args.samples, len(data.val)),
        "bc_loss": round(val["bc/loss"], 4),
        "bc_loss_rolled_images": round(val["bc/loss"] + val["bc/image_gain"], 4),
        "image_gain": round(val["bc/image_gain"], 4),
        "blind_floor": round(slot_entropy(train_tokens), 4),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
