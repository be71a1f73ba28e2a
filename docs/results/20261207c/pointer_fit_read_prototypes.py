"""Prototypes of the pointer told its words' order, fitted on a frozen base with the questions, steps
and rate of `sefm train pointer`; prints the held-out curve as JSON.

--read second: a second, fresh attention over the words (zero output at first), its keys given each
word's index from the first word and from the last, beside the trained attention. The ordered fit
of the first form moved one of the trained attention's heads onto the block's shape word and none
onto the target's, whose heads sat on the colour word with saturated weights.
--read gated: gates, one per word, each a sigmoid of the slot's state read at the word's index from
the prompt's first word and from its last: no softmax, so no word competes for the read. The gated
words' sum passes through a value map that starts at zero, beside the trained attention.
Usage:
  python docs/results/20261207c/pointer_fit_read_prototypes.py --init checkpoints/base_pointer --read gated"""

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


def gated_queries(self, states, words):
    prompt, present = words
    read, _ = self.words(states[:, None], prompt, prompt, key_padding_mask=~present, need_weights=False)
    return self.query(states + read[:, 0] + self.gated(states, prompt, present))


def second_read_queries(self, states, words):
    prompt, present = words
    read, _ = self.words(states[:, None], prompt, prompt, key_padding_mask=~present, need_weights=False)
    keys = self._word_keys(prompt, present)
    second, _ = self.ordered_words(states[:, None], keys, prompt, key_padding_mask=~present, need_weights=False)
    return self.query(states + read[:, 0] + second[:, 0])


ap = argparse.ArgumentParser()
ap.add_argument("--init", required=True)
ap.add_argument("--read", choices=("second", "gated"), required=True)
ap.add_argument("--boards", type=int, default=1500)
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--lr", type=float, default=3e-3)
args = ap.parse_args()
torch.manual_seed(0)
if args.read == "gated":
    model = load_checkpoint(args.init).eval()
    pointer = model.pointer
    pointer.gated = GatedRead(pointer.query.in_features)
    pointer.queries = types.MethodType(gated_queries, pointer)
else:  # run with the first form's code (pointer_word_order_keys_as_run.diff): its _word_keys
    model = load_checkpoint(args.init).reconfigured(pointer_word_order=True).eval()
    pointer = model.pointer
    pointer.ordered_words = nn.MultiheadAttention(pointer.query.in_features, 4, batch_first=True)
    nn.init.zeros_(pointer.ordered_words.out_proj.weight)
    nn.init.zeros_(pointer.ordered_words.out_proj.bias)
    pointer.queries = types.MethodType(second_read_queries, pointer)
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
