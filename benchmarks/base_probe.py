"""Stage 0's held-out probe suite on a base, or on its architecture untrained: the scratch model
#14 asks to be probed beside the base.

``--checkpoint DIR`` probes a saved model; ``--scratch CONFIG`` builds the model of a ``sefm
pretrain`` config from random init, with its background fitted as pretraining fits it, and probes
that. Scores are ``sefm_trainer.pretrain``'s: ``kind/task`` for the questions in loc tokens and,
for a model that reasons in places, ``kind/places`` (the named object's place within one block
width; ``_target`` and ``_effector`` beside it). Prints one JSON object.

  python benchmarks/base_probe.py --checkpoint runs/base_pointer/best --scenes 100
  python benchmarks/base_probe.py --scratch config/pretrain_pointer.yaml --scenes 100
"""

from __future__ import annotations

import argparse
import json

import torch
import yaml

from sefm_interfaces.typed_config import parse_config
from sefm_policy.checkpoint import load_checkpoint
from sefm_trainer.grounding import GroundingData
from sefm_trainer.pretrain import PretrainConfig, fresh_base, place_probe, probe
from sefm_trainer.scene_chain import SceneChains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a saved model (a Stage 0 base, or any EFM checkpoint)")
    source.add_argument("--scratch", help="a sefm pretrain YAML: probe its model untrained")
    parser.add_argument("--scenes", type=int, default=100, help="held-out scenes per (kind, task)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
    else:
        with open(args.scratch) as f:
            cfg = parse_config({"out": "unused", **yaml.safe_load(f)}, PretrainConfig)
        torch.manual_seed(cfg.seed)
        data = GroundingData(cfg.model.model_image_size)
        model = fresh_base(cfg, data)
        data.close()
    data = GroundingData(model.image_size)
    scores = probe(model.eval(), data, args.scenes)
    data.close()
    if model.config.reason and model.config.action_from == "places":
        chains = SceneChains(model.image_size)
        scores |= place_probe(model, chains, args.scenes)
        chains.close()
    print(json.dumps({"model": args.checkpoint or f"untrained ({args.scratch})", "scenes": args.scenes, **scores}))


if __name__ == "__main__":
    main()
