"""Prototype: the pointer told its words' order through a second, fresh attention over the words
(zero output at first), beside its trained one. The ordered fit of `sefm train pointer --word-order`
moved one of the trained attention's four heads onto the block's shape word and none onto the
target's: those heads sit on the colour words with saturated weights. Same questions, steps and
rate as that fit; prints the held-out curve as JSON. Usage:
  python docs/results/20261207c/pointer_fit_second_read.py --init checkpoints/base_pointer"""

import argparse
import json
import types

import torch
from torch import nn

from sefm_policy.checkpoint import load_checkpoint
from sefm_trainer.pointer_fit import PLACES, chain_reads, pointer_loss
from sefm_trainer.scene_chain import SceneChains


def queries(self, states, words):
    prompt, present = words
    read, _ = self.words(states[:, None], prompt, prompt, key_padding_mask=~present, need_weights=False)
    keys = self._word_keys(prompt, present)
    second, _ = self.ordered_words(states[:, None], keys, prompt, key_padding_mask=~present, need_weights=False)
    return self.query(states + read[:, 0] + second[:, 0])


ap = argparse.ArgumentParser()
ap.add_argument("--init", required=True)
ap.add_argument("--boards", type=int, default=1500)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--lr", type=float, default=3e-3)
args = ap.parse_args()
torch.manual_seed(0)
model = load_checkpoint(args.init).reconfigured(pointer_word_order=True).eval()
pointer = model.pointer
hidden = pointer.query.in_features
pointer.ordered_words = nn.MultiheadAttention(hidden, 4, batch_first=True)
nn.init.zeros_(pointer.ordered_words.out_proj.weight)
nn.init.zeros_(pointer.ordered_words.out_proj.bias)
pointer.queries = types.MethodType(queries, pointer)
chains = SceneChains(model.image_size, "blocks8")
train = chain_reads(model, chains, args.boards, 0, 64)
held_out = chain_reads(model, chains, 200, 1, 64)
chains.close()
pointer.train()
optimizer = torch.optim.AdamW(pointer.parameters(), lr=args.lr)
generator = torch.Generator().manual_seed(0)
curve = []
for step in range(1, args.steps + 1):
    picks = torch.randint(len(train[0]), (64,), generator=generator)
    loss, _ = pointer_loss(pointer, tuple(t[picks] for t in train))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 300 == 0:
        with torch.no_grad():
            held_loss, right = pointer_loss(pointer, held_out)
        curve.append({"step": step, "loss": round(float(held_loss), 4), **dict(zip(PLACES, right, strict=True))})
        print(json.dumps(curve[-1]), flush=True)
print(json.dumps({"init": args.init, "right_patch_on_held_out_boards": curve}))
