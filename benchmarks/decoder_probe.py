"""Can a decoder of a given size map the chain's place tokens to the action tokens? The act
answer's second half alone, without images: the 12 digit tokens of the three true places
(``tokenizers.PlaceTokenizer``, as the chain writes them) in, the 4 sign/magnitude action tokens
out, teacher-forced, by a causal transformer as wide and deep as the EFM's text decoder; then
greedy closed loop on held-out seeds with the true places. It separates how big a decoder the
map needs from how well the policy sees.

Prints one JSON object. Usage:
  python benchmarks/decoder_probe.py --sizes 2x128 4x256 --steps 6000 [--radices 6 4]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from state_policy_ceiling import demonstrations, places  # a sibling benchmark
from torch import nn
from tqdm import tqdm

from sefm_policy.tokenizers import PlaceTokenizer, language_table_action
from sefm_sim_bridge.envs import make_env
from sefm_trainer.evaluate import HELD_OUT_SEED, success_summary

ACTION = language_table_action()
N_ACTION = len(ACTION.slot_sizes)
PLACE = PlaceTokenizer()  # main() sets the digits, and with them VOCAB and N_PLACE
VOCAB = N_PLACE = 0


def set_place_digits(radices: tuple[int, ...]) -> None:
    global PLACE, VOCAB, N_PLACE
    PLACE = PlaceTokenizer(radices)
    VOCAB = max(max(PLACE.slot_sizes), max(ACTION.slot_sizes))
    N_PLACE = 3 * len(PLACE.slot_sizes)


class Decoder(nn.Module):
    def __init__(self, layers: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.Embedding(N_PLACE + N_ACTION, width)
        block = nn.TransformerEncoderLayer(width, max(width // 64, 2), 2 * width, 0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(block, layers)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits for each next token: (B, L) -> (B, L, VOCAB)."""
        n = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n)
        h = self.embed(tokens) + self.position(torch.arange(n))
        return self.head(self.blocks(h, mask=mask, is_causal=True))


def restricted(logits: torch.Tensor, slot: int) -> torch.Tensor:
    out = logits.clone()
    out[..., ACTION.slot_sizes[slot] :] = float("-inf")
    return out


def fit(model: Decoder, sequences: torch.Tensor, steps: int, batch: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in tqdm(range(steps), desc="fit", unit="step"):
        seq = sequences[torch.randint(0, len(sequences), (batch,))]
        logits = model(seq[:, :-1])[:, N_PLACE - 1 :]
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), seq[:, N_PLACE:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return float(loss.detach())


@torch.no_grad()
def act(model: Decoder, place_tokens: np.ndarray) -> np.ndarray:
    seq = torch.as_tensor(place_tokens, dtype=torch.long)
    for slot in range(N_ACTION):
        nxt = restricted(model(seq)[:, -1], slot).argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
    return ACTION.decode(seq[:, N_PLACE:].numpy())


def closed_loop(model: Decoder, task: str, seeds: range, max_steps: int) -> dict:
    envs = [make_env(task, render_images=False) for _ in seeds]
    for env, seed in zip(envs, seeds, strict=True):
        env.reset(seed=seed)
    done = [False] * len(envs)
    for _ in range(max_steps):
        live = [i for i, d in enumerate(done) if not d]
        if not live:
            break
        tokens = PLACE.encode(np.stack([places(envs[i]).reshape(3, 2) for i in live])).reshape(len(live), -1)
        for i, action in zip(live, act(model, tokens), strict=True):
            envs[i].step(action)
            done[i] = envs[i].success()
    return success_summary(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="block2block4")
    parser.add_argument("--demos", type=int, default=2000)
    parser.add_argument("--sizes", nargs="+", default=["2x128", "4x256"], help="LAYERSxWIDTH")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--radices", type=int, nargs="+", default=[8, 8], help="place digits (place_radices)")
    args = parser.parse_args()
    set_place_digits(tuple(args.radices))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = demonstrations(make_env(args.task, render_images=False), args.demos, places)
    sequences = np.concatenate([PLACE.encode(x.reshape(-1, 3, 2)).reshape(len(x), -1), ACTION.encode(y)], 1)
    sequences = torch.as_tensor(sequences, dtype=torch.long)
    seeds = range(HELD_OUT_SEED, HELD_OUT_SEED + args.episodes)
    result = {"task": args.task, "demos": args.demos, "steps": args.steps, "batch": args.batch, "radices": args.radices}
    for size in args.sizes:
        layers, width = (int(v) for v in size.split("x"))
        model = Decoder(layers, width)
        loss = fit(model, sequences, args.steps, args.batch)
        with torch.no_grad():
            probe = sequences[:4096]
            exact = (act(model, probe[:, :N_PLACE].numpy()) == ACTION.decode(probe[:, N_PLACE:].numpy())).all(1)
        result[size] = {
            "train_loss": round(loss, 3),
            "exact_action_on_train": round(float(exact.mean()), 3),
            **closed_loop(model, args.task, seeds, 100),
        }
        tqdm.write(json.dumps({size: result[size]}))  # each size as it lands
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
