"""Where an 8-block chain keeps which block is which (throwaway probe, session 19).

On fresh 8-block boards, the features of the patch holding each block's centre are read at two
depths: the vision tower's output and the decoder's last layer (the image tokens after the
prefix-LM has mixed them with the prompt). A softmax regression fitted on 3/4 of the boards tells
the block's identity (8-way), its colour and its shape on the other quarter. Prints JSON. Usage:
python docs/results/20261206/identity_probe.py --checkpoint DIR [--boards 400]
"""

import argparse
import json

import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.prompts import Observation, Task
from sefm_sim_bridge.grounding_scenes import GroundingScenes
from sefm_sim_bridge.scene import image_point


def fit(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, classes: int) -> float:
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    head = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(500):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x[train]), y[train]).backward()
        opt.step()
    with torch.no_grad():
        return float((head(x[~train]).argmax(-1) == y[~train]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--boards", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_checkpoint(args.checkpoint).eval()
    scenes = GroundingScenes((model.image_size, model.image_size))
    grid = model.image_size // model.config.vision.patch_size
    tower, decoder, names, board = [], [], [], []
    for b in range(args.boards):
        scene, _, _ = scenes.sample("blocks8", 2 * b + 1)
        blocks = sorted(scene.objects)
        obs = [Observation(images=(scene.image, scene.image), instruction=f"push the {blocks[0]} to the {blocks[1]}")]
        with torch.no_grad():
            feats = model.image_features(obs)[0, 0]
            prefix = model.prefix(Task.ACT, obs)
            _, states = model._teacher_forced_logits(prefix, None, states=True)
            image = prefix.input_ids[0] == model.layout.image
            dec = states[0, : image.shape[0]][image][: model.tokens_per_image]
        for name in blocks:
            col, row = image_point(scene.objects[name])
            patch = min(int(row * grid), grid - 1) * grid + min(int(col * grid), grid - 1)
            tower.append(feats[patch])
            decoder.append(dec[patch])
            names.append(name)
            board.append(b)
    scenes.close()
    train = torch.tensor(board) < int(0.75 * args.boards)
    labels = {
        "identity": sorted(set(names)),
        "colour": sorted({n.split()[0] for n in names}),
        "shape": sorted({n.split()[1] for n in names}),
    }
    out = {"checkpoint": args.checkpoint, "boards": args.boards, "blocks": len(names)}
    for depth, feats in (("tower", torch.stack(tower)), ("decoder", torch.stack(decoder))):
        for what, values in labels.items():
            key = [n if what == "identity" else n.split()[0 if what == "colour" else 1] for n in names]
            y = torch.tensor([values.index(k) for k in key])
            out[f"{depth}/{what}"] = round(fit(feats, y, train, len(values)), 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
