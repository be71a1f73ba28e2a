"""Does the tiny EFM learn to point, and how soon? The measurements behind Stage 0's design.

Trains a fresh model on one grounding task only (``point``, held-out scenes scored every 100
steps: within one block width) or on the sign of the object's x and y through the act prompt
(``--target sign``), for one scene kind, with one stem. ``--kind single`` is one object alone;
``banana`` adds the effector beside it. Prints JSON: accuracy and median error (m) over training.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import sefm_trainer.grounding as grounding
from sefm_policy.config import EFMConfig
from sefm_policy.losses import EOS_WEIGHT, answer_loss, bc_loss
from sefm_policy.model import EFM
from sefm_policy.tokenizers import PlaceTokenizer
from sefm_trainer.grounding import QUESTION_MAKERS, GroundingData, parse_point, points_at


def questions(data: GroundingData, kind: str, seed: int, n: int):
    """``n`` point questions on fresh scenes (odd scene seeds for the held-out set, ``seed`` < 0)."""
    rng, out = np.random.default_rng(abs(seed)), []
    while len(out) < n:
        scene, after = data.scene(kind, 2 * int(rng.integers(2**30)) + (seed < 0))
        out.append(QUESTION_MAKERS["point"](scene, list(scene.objects), rng, after, effector_share=0.0))
    return out


def sign_tokens(batch) -> np.ndarray:
    return np.array([[int(q.truth[0] < 0), 5, int(q.truth[1] < 0), 5] for q in batch])


def run(args) -> list[dict]:
    torch.manual_seed(0)
    grounding.PLACE = PlaceTokenizer(tuple(args.radices))
    model = EFM.build(EFMConfig(vision={"stem": args.stem}))
    data = GroundingData(model.image_size)
    model.fit_background([q.observation for q in questions(data, args.kind, 99, 256)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    test = questions(data, args.kind, -1, 64)
    curve = []
    for step in range(1, args.steps + 1):
        batch = questions(data, args.kind, step, 32)
        obs = [q.observation for q in batch]
        if args.target == "sign":
            loss = bc_loss(model, obs, sign_tokens(batch)).loss
        else:
            loss = answer_loss(
                model, obs, [q.prompt for q in batch], [q.answer for q in batch], args.loc_sigma, args.eos_weight
            ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            model.eval()
            with torch.no_grad():
                if args.target == "sign":
                    got = model.sample_actions([q.observation for q in test], greedy=True).tokens
                    score = {"sign_accuracy": float((got[:, [0, 2]] == sign_tokens(test)[:, [0, 2]]).mean())}
                else:
                    answers = model.answer([q.observation for q in test], [q.prompt for q in test])
                    points = [parse_point(a) for a in answers]
                    errors = [np.linalg.norm(p - q.truth) for p, q in zip(points, test, strict=True) if p is not None]
                    score = {
                        "accuracy": float(np.mean([points_at(p, q.truth) for p, q in zip(points, test, strict=True)])),
                        "median_error_m": float(np.median(errors)) if errors else None,
                    }
            model.train()
            curve.append({"step": step, "loss": loss.item(), **score})
    data.close()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="banana", choices=["single", "banana", "blocks4", "blocks8", "varied"])
    ap.add_argument("--stem", default="patch", choices=["patch", "conv"])
    ap.add_argument("--target", default="point", choices=["point", "sign"])
    ap.add_argument(
        "--radices", type=int, nargs="+", default=list(grounding.PLACE.radices), help="a place's digits: cells per axis"
    )
    ap.add_argument("--loc-sigma", type=float, default=0.0, help="soft loc targets: Gaussian width in bins")
    ap.add_argument("--eos-weight", type=float, default=EOS_WEIGHT, help="weight of the answer's eos target")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(json.dumps({"benchmark": "pointing_probe", **vars(args), "curve": run(args)}, indent=2))


if __name__ == "__main__":
    main()
