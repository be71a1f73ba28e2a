"""Can the tiny random-init EFM learn *where* an object is? A probe behind the demo's numbers.

The action's two sign tokens must say which half of a 64x64 image holds a red square (same
instruction every time; magnitudes fixed). A square filling a whole 16 px patch is found in a
few hundred steps. A 4 px one, the size of a LanguageTable block, is not with SigLIP's pixel
scaling (``--pixel-norm siglip``): the board dominates every patch. With the default
background normalisation (the board's mean subtracted, fitted on the probe's own images) it is.
``--objects K`` draws K squares of different colours and names one in the instruction: the
signs must follow the named square, so the model has to bind a word to an object (Block2Block
needs that; BananaTable does not). Looking at a random square scores about 0.5 + 0.5/K.
Prints JSON: sign-token accuracy over training, per square size.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sefm_policy.config import EFMConfig
from sefm_policy.losses import bc_loss
from sefm_policy.model import EFM
from sefm_policy.prompts import Observation

COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 160, 60), "yellow": (220, 200, 40)}


def batch(rng: np.random.Generator, n: int, size: int, objects: int = 1):
    obs, tokens = [], []
    for _ in range(n):
        image = np.full((64, 64, 3), 230, np.uint8)
        names = ["red"] if objects == 1 else list(rng.choice(list(COLOURS), objects, replace=False))
        corners = []
        while len(corners) < objects:  # squares apart, so none hides another
            x, y = rng.integers(0, 64 - size + 1, 2)
            if all(max(abs(x - u), abs(y - v)) >= size for u, v in corners):
                corners.append((x, y))
        for name, (x, y) in zip(names, corners, strict=True):
            image[y : y + size, x : x + size] = COLOURS[name]
        obs.append(Observation(images=(image, image), instruction=f"push the {names[0]} moon to the blue cube"))
        cx, cy = corners[0][0] + size / 2, corners[0][1] + size / 2
        tokens.append([int(cx < 32), 5, int(cy < 32), 5])
    return obs, np.array(tokens)


def sign_accuracy(model: EFM, rng: np.random.Generator, size: int, objects: int, n: int = 128) -> float:
    obs, tokens = batch(rng, n, size, objects)
    with torch.no_grad():
        greedy = model.sample_actions(obs, greedy=True).tokens
    return float((greedy[:, [0, 2]] == tokens[:, [0, 2]]).mean())


def probe(size: int, steps: int, lr: float, every: int, pixel_norm: str, objects: int, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EFM.build(EFMConfig(seed=seed, pixel_norm=pixel_norm))
    model.fit_background(batch(rng, 256, size, objects)[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    curve = []
    for step in range(1, steps + 1):
        model.train()
        obs, tokens = batch(rng, 32, size, objects)
        loss = bc_loss(model, obs, tokens).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0:
            model.eval()
            curve.append({"step": step, "sign_accuracy": sign_accuracy(model, rng, size, objects)})
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 4])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--pixel-norm", choices=["background", "siglip"], default="background")
    ap.add_argument("--objects", type=int, default=1, choices=range(1, len(COLOURS) + 1), help="squares per image")
    args = ap.parse_args()
    torch.set_num_threads(2)
    result = {
        f"square_{s}px": probe(s, args.steps, args.lr, args.every, args.pixel_norm, args.objects) for s in args.sizes
    }
    header = {"benchmark": "vision_probe", "pixel_norm": args.pixel_norm, "objects": args.objects}
    header |= {"lr": args.lr, "batch": 32}
    print(json.dumps({**header, **result}, indent=2))


if __name__ == "__main__":
    main()
