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
from sefm_policy.losses import bc_loss, images_rolled
from sefm_trainer.sft import Data, SFTConfig


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
    data = Data(SFTConfig(data=args.data, out="-", objectives=["bc"], model=model.config))
    data.tokenizer = model.embodiment.action
    picks = np.random.default_rng(0).permutation(len(data.val))[: args.samples]
    own, rolled = [], []
    with torch.no_grad():
        for chunk in np.array_split(picks, max(1, len(picks) // 64)):
            obs, tokens = data.batch("bc", data.val, chunk)
            own.append(bc_loss(model, obs, tokens).loss.item() * len(chunk))
            rolled.append(bc_loss(model, images_rolled(obs), tokens).loss.item() * len(chunk))
    train_tokens = np.concatenate([data.tokenizer.encode(e.actions) for e in data.train.episodes])
    loss, loss_rolled = sum(own) / len(picks), sum(rolled) / len(picks)
    print(json.dumps({
        "benchmark": "image_reliance",
        "checkpoint": args.checkpoint,
        "validation_steps": len(picks),
        "bc_loss": round(loss, 4),
        "bc_loss_rolled_images": round(loss_rolled, 4),
        "image_gain": round(loss_rolled - loss, 4),
        "blind_floor": round(slot_entropy(train_tokens), 4),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
