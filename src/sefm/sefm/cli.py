"""The ``sefm`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from sefm_policy.checkpoint import CheckpointError, load_checkpoint, read_manifest, save_checkpoint
from sefm_policy.config import ConfigError, EFMConfig, load_config
from sefm_policy.model import EFM


def model_init(args: argparse.Namespace) -> None:
    config = load_config(args.config, EFMConfig, section=args.section) if args.config else EFMConfig()
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})
    model = EFM.build(config)
    path = save_checkpoint(model, args.out, metadata={"version": 0, "source": "init"})
    print(f"wrote {path} ({sum(p.numel() for p in model.parameters()):,} parameters, {config.embodiment})")


def model_info(args: argparse.Namespace) -> None:
    manifest = read_manifest(args.checkpoint)
    model = load_checkpoint(args.checkpoint)
    info = {
        "path": str(args.checkpoint),
        "metadata": manifest["metadata"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "image_size": model.image_size,
        "action_slots": len(model.embodiment.action.slot_sizes),
        "steps_to_go_bins": model.embodiment.steps.bins,
        "config": model.config.model_dump(),
    }
    print(json.dumps(info, indent=2))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sefm", description="Self-improving embodied foundation models on ROS 2.")
    sub = p.add_subparsers(dest="command", required=True)
    model = sub.add_parser("model", help="create and inspect EFM checkpoints").add_subparsers(
        dest="action", required=True
    )
    init = model.add_parser("init", help="write a freshly initialised EFM checkpoint")
    init.add_argument("--out", required=True, help="checkpoint directory to create")
    init.add_argument("--config", help="YAML file holding an EFM config")
    init.add_argument("--section", help="top-level key of the YAML file that holds the EFM config, e.g. model")
    init.add_argument("--seed", type=int, help="override the config's seed")
    init.set_defaults(run=model_init)
    info = model.add_parser("info", help="verify a checkpoint and print its config and metadata")
    info.add_argument("checkpoint")
    info.set_defaults(run=model_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"sefm: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
