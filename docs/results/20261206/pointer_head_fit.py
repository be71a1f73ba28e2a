"""Can a place pointer learn which block the words name from a frozen chain's states? (session 19)

The chain's states are computed once, with no gradient, for chain questions on fresh 8-block boards
(``SceneChains``, as the ``scenes`` objective asks them); then a fresh ``PlacePointer`` alone is
fitted on them: the coarse row and column of the named block, its target and the effector,
teacher-forced as training does. Scored on boards it was not fitted on: the share of questions
whose greedy patch (row, then column in it) is the true one. ``--save DIR``: the checkpoint with
the fitted pointer in it (``place_pointer: true``), to start Stage 1 from. Prints JSON. Usage:
python docs/results/20261206/pointer_head_fit.py --checkpoint DIR --boards 1500 [--save DIR]
"""

import argparse
import json
import time

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint, save_checkpoint
from sefm_policy.place_pointer import PlacePointer
from sefm_policy.prompts import Task
from sefm_trainer.scene_chain import SceneChains

PLACES = ("object", "target", "effector")


@torch.no_grad()
def states_of(model, chains, boards: int, held_out: int, batch: int = 64):
    per = len(model.embodiment.action.place.slot_sizes)
    slots = [p * per + k for p in range(len(PLACES)) for k in (0, 1)]
    images, prompts, masks, slot_states, targets = [], [], [], [], []
    picks = np.repeat(np.arange(boards), 2)
    for start in range(0, len(picks), batch):
        obs, tokens = chains.batch(model.embodiment.action, held_out, picks[start : start + batch])
        tokens = torch.as_tensor(tokens)
        chain = model.embodiment.reasoning_slots
        prefix = model.prefix(Task.ACT, obs)
        _, states = model._teacher_forced_logits(prefix, model._action_vocab(tokens[:, : chain - 1]), states=True)
        _, (prompt, words) = model._pointer_keys(prefix, states)
        ids = prefix.input_ids
        image = ids == model.layout.image
        tokens_states = states[:, : ids.shape[1]][image].view(len(obs), -1, states.shape[-1])
        tokens_states = tokens_states[:, : model.tokens_per_image]
        n = chain
        images.append(tokens_states)
        width = 16
        prompts.append(prompt[:, -width:])
        masks.append(words[:, -width:])
        slot_states.append(states[:, states.shape[1] - n :][:, slots])
        targets.append(tokens[:, slots])
    return torch.cat(images), torch.cat(prompts), torch.cat(masks), torch.cat(slot_states), torch.cat(targets)


def losses_and_hits(pointer, data, index):
    images, prompts, masks, slots, targets = (t[index] for t in data)
    keys = pointer.keys(images)
    loss, hits = 0.0, []
    for p in range(len(PLACES)):
        row, col = targets[:, 2 * p], targets[:, 2 * p + 1]
        row_logits = pointer.logits(slots[:, 2 * p], keys, (prompts, masks))
        col_logits = pointer.logits(slots[:, 2 * p + 1], keys, (prompts, masks), rows=row)
        loss = loss + torch.nn.functional.cross_entropy(row_logits, row)
        loss = loss + torch.nn.functional.cross_entropy(col_logits, col)
        said_row = row_logits.argmax(-1)
        said_col = pointer.logits(slots[:, 2 * p + 1], keys, (prompts, masks), rows=said_row).argmax(-1)
        hits.append(((said_row == row) & (said_col == col)).float().mean().item())
    return loss, hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--boards", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--save")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = load_checkpoint(args.checkpoint).reconfigured(place_pointer=True).eval()
    chains = SceneChains(model.image_size, "blocks8")
    t0 = time.time()
    train = states_of(model, chains, args.boards, 0)
    val = states_of(model, chains, max(args.boards // 8, 64), 1)
    chains.close()
    pointer = PlacePointer(train[0].shape[-1], model.pointer.grid)
    opt = torch.optim.AdamW(pointer.parameters(), lr=args.lr)
    n, curve = len(train[0]), []
    every = max(args.steps // 10, 1)
    for step in range(1, args.steps + 1):
        loss, _ = losses_and_hits(pointer, train, torch.randint(n, (64,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                _, hits = losses_and_hits(pointer, val, torch.arange(len(val[0])))
            curve.append({"step": step, **{p: round(h, 3) for p, h in zip(PLACES, hits, strict=True)}})
            print(json.dumps(curve[-1]), flush=True)
    if args.save:
        model.pointer.load_state_dict(pointer.state_dict())
        save_checkpoint(model, args.save)
    print(json.dumps({"checkpoint": args.checkpoint, "boards": args.boards, "questions": n,
                      "held_out_questions": len(val[0]), "lr": args.lr, "minutes": round((time.time() - t0) / 60, 1),
                      "right_patch_on_held_out_boards": curve}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
