"""Prototype: the pointer told its words' order through gates, one per word, each a sigmoid of the
slot's state read at the word's index from the prompt's first word and from its last: no softmax,
so no word competes with another for the read and none starves of gradient, as the target's shape
word did under both attentions tried. The gated words' sum passes through a value map that starts
at zero, beside the trained attention. Same questions, steps and rate as `sefm train pointer`;
prints the held-out curve as JSON. Usage:
  python docs/results/20261207c/pointer_fit_gated_read.py --init checkpoints/base_pointer"""

import argparse
import json
import types

import torch
from torch import nn

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.prompts import MAX_PROMPT_TOKENS
from sefm_trainer.pointer_fit import PLACES, chain_reads, pointer_loss
from sefm_trainer.scene_chain import SceneChains


class GatedRead(nn.Module):
    def __init__(self, hidden: int, positions: int = MAX_PROMPT_TOKENS) -> None:
        super().__init__()
        self.positions = positions
        self.first = nn.Linear(hidden, positions)
        self.last = nn.Linear(hidden, positions)
        self.value = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.value.weight)
        nn.init.zeros_(self.value.bias)

    def forward(self, states, prompt, present):
        first = (present.long().cumsum(-1) - 1).clamp(0, self.positions - 1)
        last = (present.long().sum(-1, keepdim=True) - 1 - first).clamp(0, self.positions - 1)
        gates = torch.sigmoid(self.first(states).gather(-1, first) + self.last(states).gather(-1, last))
        gates = gates * present
        return self.value((gates[..., None] * prompt).sum(1))


def queries(self, states, words):
    prompt, present = words
    read, _ = self.words(states[:, None], prompt, prompt, key_padding_mask=~present, need_weights=False)
    return self.query(states + read[:, 0] + self.gated(states, prompt, present))


ap = argparse.ArgumentParser()
ap.add_argument("--init", required=True)
ap.add_argument("--boards", type=int, default=1500)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--lr", type=float, default=3e-3)
args = ap.parse_args()
torch.manual_seed(0)
model = load_checkpoint(args.init).eval()
pointer = model.pointer
pointer.gated = GatedRead(pointer.query.in_features)
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
