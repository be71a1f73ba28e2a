"""The ``sefm`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sefm_interfaces.typed_config import UsageError, load_config, parse_config
from sefm_policy.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.centre_fit import CentreFitConfig, fit_object_centres
from sefm_trainer.datagen import DatagenConfig, generate
from sefm_trainer.evaluate import EvalConfig, run_evaluation
from sefm_trainer.pointer_fit import PointerFitConfig, fit_place_pointer
from sefm_trainer.pretrain import PretrainConfig, pretrain
from sefm_trainer.sft import SFTConfig, train_sft
from sefm_trainer.stage2 import Stage2Config, self_improve
from sefm_trainer.threshold import CalibrationConfig, calibrate_threshold

from .config_flags import add_config_flags, given

# Config fields whose flags keep their shorter names.
FLAG_NAMES = {"task_family": "--task", "noise_std": "--noise"}


def model_init(args: argparse.Namespace) -> None:
    config = load_config(args.config, EFMConfig, section=args.section) if args.config else EFMConfig()
    config = config.model_copy(update=given(args, EFMConfig))
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


# How a trained model reads and practises, not what it learned: changing them keeps every weight meaningful.
READING_KEYS = ["place_reads", "place_frames", "practice_digits"]


def model_reconfigure(args: argparse.Namespace) -> None:
    changes = given(args, EFMConfig)
    if not changes:
        raise UsageError("nothing to change: give " + " or ".join("--" + k.replace("_", "-") for k in READING_KEYS))
    model = load_checkpoint(args.checkpoint)
    parse_config(model.config.model_dump() | changes, EFMConfig, f"{args.checkpoint} with the flags given")
    metadata = read_manifest(args.checkpoint)["metadata"] | {"reconfigured_from": str(args.checkpoint)}
    path = save_checkpoint(model.reconfigured(**changes), args.out, metadata=metadata)
    print(f"wrote {path}: {args.checkpoint} with {changes}")


def datagen(args: argparse.Namespace) -> None:
    cfg = parse_config(given(args, DatagenConfig), DatagenConfig, "<command line>")
    summary = generate(args.episodes, args.out, cfg, seed=args.seed, workers=args.workers)
    print(json.dumps({"out": str(args.out), **summary}, indent=2))


def episodes(args: argparse.Namespace) -> None:
    from sefm_trainer.bag_reader import load_episodes

    loaded = load_episodes(args.folder, fraction=args.fraction, seed=args.seed)
    eps = loaded.episodes
    known = [e for e in eps if e.meta.success is not None]
    summary = {
        "folder": str(args.folder),
        "episodes": len(eps),
        "steps": sum(e.length for e in eps),
        "success_rate": sum(e.meta.success for e in known) / len(known) if known else None,
        "episodes_without_ground_truth": len(eps) - len(known),
        "mean_length": sum(e.length for e in eps) / len(eps) if eps else None,
        "task_families": sorted({e.meta.task_family or "?" for e in eps}),
        "skipped": [{"path": str(p), "reason": r} for p, r in loaded.skipped],
    }
    if args.verbose:
        summary["metadata"] = [json.loads(e.meta.to_json()) | {"path": str(e.path)} for e in eps]
    print(json.dumps(summary, indent=2))


def episodes_import(args: argparse.Namespace) -> int | None:
    from sefm_trainer.rig_import import RigMap, import_bags

    summary = import_bags(args.bags, load_config(args.map, RigMap), args.out)
    print(json.dumps(summary, indent=2))
    return 1 if not summary["episodes"] else None


def strip(args: argparse.Namespace) -> None:
    from sefm_sim_bridge.figures import demonstration_strips

    path = demonstration_strips(args.out, frames=args.frames, size=args.size, seed=args.seed)
    print(f"wrote {path}")


def aloha_strip(args: argparse.Namespace) -> None:
    from .model_views import aloha_model_images

    print(f"wrote {aloha_model_images(args.out, seed=args.seed, scale=args.scale)}")


def bringup(args: argparse.Namespace) -> int:
    from .bringup import Bringup
    from .graph import load_graph

    config = load_graph(args.config)
    with Bringup(config, base_dir=Path(args.config).resolve().parent, log_dir=args.log_dir) as graph:
        names = ", ".join(spec.fqn for spec in graph.specs)
        print(f"sefm bringup: started {len(graph.specs)} nodes ({names}); logs in {graph.log_dir}; Ctrl-C stops")
        return graph.supervise(duration=args.duration)


def fleet(args: argparse.Namespace) -> None:
    from .fleet_status import fleet_status

    fleet_status(duration=args.once)


def train_sft_cmd(args: argparse.Namespace) -> None:
    cfg = config_with_overrides(args, SFTConfig)
    print(json.dumps({"out": cfg.out, "best": train_sft(cfg)}, indent=2))


def train_pointer_cmd(args: argparse.Namespace) -> None:
    cfg = config_with_overrides(args, PointerFitConfig)
    print(json.dumps({"out": cfg.out, **fit_place_pointer(cfg)}, indent=2))


def train_centres_cmd(args: argparse.Namespace) -> None:
    cfg = config_with_overrides(args, CentreFitConfig)
    print(json.dumps({"out": cfg.out, **fit_object_centres(cfg)}, indent=2))


def pretrain_cmd(args: argparse.Namespace) -> None:
    cfg = config_with_overrides(args, PretrainConfig)
    print(json.dumps({"out": cfg.out, "best": pretrain(cfg)}, indent=2))


def config_with_overrides(args: argparse.Namespace, cls):
    """``--config``'s keys, then the command line's flags (those given), validated together."""
    flags = given(args, cls)
    return load_config(args.config, cls, overrides=flags) if args.config else parse_config(flags, cls, "<command line>")


def train_stage2_cmd(args: argparse.Namespace) -> None:
    cfg = config_with_overrides(args, Stage2Config)
    if args.fleet:
        from .fleet_practice import practise_on_fleet
        from .graph import load_graph

        result = practise_on_fleet(cfg, load_graph(args.fleet), Path(args.fleet).parent, log_dir=args.log_dir)
    else:
        result = self_improve(cfg)
    print(json.dumps({k: v for k, v in result.items() if k != "history"} | {"out": cfg.out}, indent=2))


def reward_calibrate(args: argparse.Namespace) -> int | None:
    cfg = parse_config(given(args, CalibrationConfig), CalibrationConfig, "<command line>")
    result = calibrate_threshold(load_checkpoint(args.checkpoint), args.data, args.out, cfg)
    summary = {k: v for k, v in result.items() if k != "scores"}
    print(json.dumps({"checkpoint": str(args.checkpoint)} | summary | {"out": str(args.out)}, indent=2))
    if result["recommended_threshold"] is None:
        print(
            f"sefm: no threshold reaches precision {cfg.min_precision}: this reward model does not tell "
            "success apart on these episodes",
            file=sys.stderr,
        )
        return 1
    return None


def eval_cmd(args: argparse.Namespace) -> None:
    summary = run_evaluation(parse_config(given(args, EvalConfig), EvalConfig, "<command line>"))
    print(json.dumps({k: v for k, v in summary.items() if k != "per_episode"}, indent=2))


def demo_cmd(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(args.config, args.runs, from_scratch=args.from_scratch)


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
    add_config_flags(init, EFMConfig, ["seed", "embodiment"])
    init.set_defaults(run=model_init)
    reconf = model.add_parser("reconfigure", help="write a checkpoint's weights with another way of reading them")
    reconf.add_argument("checkpoint")
    reconf.add_argument("--out", required=True, help="checkpoint directory to write")
    add_config_flags(reconf, EFMConfig, READING_KEYS)
    reconf.set_defaults(run=model_reconfigure)
    info = model.add_parser("info", help="verify a checkpoint and print its config and metadata")
    info.add_argument("checkpoint")
    info.set_defaults(run=model_info)

    gen = sub.add_parser("datagen", help="write scripted demonstration episodes as rosbag2 bags")
    gen.add_argument("--episodes", type=int, required=True)
    gen.add_argument("--out", required=True, help="folder to write episode bags into (kept episodes are skipped)")
    gen.add_argument("--seed", type=int, default=0, help="first episode seed; episode i uses seed + i")
    gen.add_argument("--workers", type=int, default=1, help="parallel processes")
    flags = ["task_family", "image_size", "max_steps", "noise_std", "hold_steps"]
    add_config_flags(gen, DatagenConfig, flags, FLAG_NAMES)
    gen.set_defaults(run=datagen)

    episodes_cmd = sub.add_parser("episodes", help="summarise episode bags, or import a rig's own recordings")
    episodes_sub = episodes_cmd.add_subparsers(dest="episodes_command", required=True)
    eps = episodes_sub.add_parser("summary", help="summarise a folder of episode bags; non-episodes say why")
    eps.add_argument("folder")
    eps.add_argument("--fraction", type=float, help="deterministic subset of the episodes, e.g. 0.1")
    eps.add_argument("--seed", type=int, default=0, help="seed of the subset")
    eps.add_argument("--verbose", action="store_true", help="include every episode's metadata")
    eps.set_defaults(run=episodes)
    imp = episodes_sub.add_parser("import", help="turn ros2 bag recordings of a rig into sefm episodes")
    imp.add_argument("bags", nargs="+", help="rosbag2 directories (MCAP or sqlite3)")
    imp.add_argument("--map", required=True, help="YAML map of the rig's topics (sefm_trainer.rig_import.RigMap)")
    imp.add_argument("--out", required=True, help="folder to write the episode bags into")
    imp.set_defaults(run=episodes_import)

    up = sub.add_parser("bringup", help="start the node graph of a YAML config (what bringup.launch.py starts)")
    up.add_argument("config", help="graph YAML, e.g. config/sim_language_table.yaml")
    up.add_argument("--duration", type=float, help="stop after this many seconds")
    up.add_argument("--log-dir", help="folder for the nodes' logs (default: a temporary folder)")
    up.set_defaults(run=bringup)

    pre = sub.add_parser("pretrain", help="Stage 0: grounding pretraining of the base model on sim scenes; resumes")
    pre.add_argument("--config", help="YAML with any PretrainConfig keys (model: an EFM config)")
    add_config_flags(
        pre, PretrainConfig, ["out", "init", "steps", "stop_at", "batch_size", "unimodal", "place_batch", "objects"]
    )
    pre.set_defaults(run=pretrain_cmd)

    train = sub.add_parser("train", help="Stage 1 fine-tuning and Stage 2 self-improvement").add_subparsers(
        dest="stage", required=True
    )
    sft = train.add_parser("sft", help="Stage 1: BC + steps-to-go (+ instruction) on episode bags; resumes")
    sft.add_argument("--config", help="YAML with any SFTConfig keys (model: an EFM config)")
    add_config_flags(
        sft,
        SFTConfig,
        ["data", "out", "steps", "batch_size", "init", "init_vision", "deepen", "patch_positions", "device"],
    )
    sft.set_defaults(run=train_sft_cmd)
    ptr = train.add_parser("pointer", help="fit a chain's new place pointer on its frozen states, before Stage 1")
    ptr.add_argument("--config", help="YAML with any PointerFitConfig keys")
    add_config_flags(ptr, PointerFitConfig, list(PointerFitConfig.model_fields))
    ptr.set_defaults(run=train_pointer_cmd)
    ctr = train.add_parser("centres", help="fit the centre finder a chain's places snap to (snap_places)")
    ctr.add_argument("--config", help="YAML with any CentreFitConfig keys")
    add_config_flags(ctr, CentreFitConfig, list(CentreFitConfig.model_fields))
    ctr.set_defaults(run=train_centres_cmd)
    st2 = train.add_parser("stage2", help="Stage 2: REINFORCE on practice, rewarded by the frozen steps-to-go model")
    st2.add_argument("--config", help="YAML with any Stage2Config keys")
    add_config_flags(st2, Stage2Config, ["policy", "reward_model", "out", "loops"])
    st2.add_argument("--fleet", help="graph YAML: practise on its robots through ROS (default: in-process sim)")
    st2.add_argument("--log-dir", help="with --fleet: folder for the nodes' logs")
    st2.set_defaults(run=train_stage2_cmd)

    reward = sub.add_parser("reward", help="the steps-to-go reward model").add_subparsers(dest="action", required=True)
    cal = reward.add_parser("calibrate", help="choose the success threshold s on episodes whose outcome is known")
    cal.add_argument("--checkpoint", required=True, help="reward model (Stage 1 best_steps)")
    cal.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="folders of episode bags not trained on, pooled: fresh demonstrations, a policy's recorded failures",
    )
    cal.add_argument("--out", required=True, help="folder for calibration.json and calibration.png")
    add_config_flags(cal, CalibrationConfig, list(CalibrationConfig.model_fields))
    cal.set_defaults(run=reward_calibrate)

    ev = sub.add_parser("eval", help="greedy success of a policy checkpoint on seeded episodes, with Wilson 95% bounds")
    add_config_flags(ev, EvalConfig, list(EvalConfig.model_fields), FLAG_NAMES, required=True)
    ev.set_defaults(run=eval_cmd)

    demo = sub.add_parser("demo", help="the whole story: demonstrations, Stage 1, Stage 2 on a ROS fleet, report")
    demo.add_argument("--config", default="config/demo.yaml")
    demo.add_argument("--runs", default="runs", help="the report goes to <runs>/<time>/report.md")
    demo.add_argument("--from-scratch", action="store_true", help="generate demonstrations and train Stage 1 too")
    demo.set_defaults(run=demo_cmd)

    fleet_cmd = sub.add_parser("fleet", help="watch the robots of this ROS domain").add_subparsers(
        dest="action", required=True
    )
    status = fleet_cmd.add_parser("status", help="a live table: episode, step, d, success, policy version, paused")
    status.add_argument("--once", type=float, metavar="SECONDS", help="listen this long, print the table once, exit")
    status.set_defaults(run=fleet)

    fig = sub.add_parser("sim-strip", help="PNG of frames from one demonstration of each task family")
    fig.add_argument("--out", default="docs/images/demonstrations.png")
    fig.add_argument("--frames", type=int, default=6)
    fig.add_argument("--size", type=int, default=160, help="pixels per frame side")
    fig.add_argument("--seed", type=int, default=0)
    fig.set_defaults(run=strip)

    packed = sub.add_parser("aloha-strip", help="PNG of ALOHA's two packed model images at three moments")
    packed.add_argument("--out", default="docs/images/aloha_model_images.png")
    packed.add_argument("--seed", type=int, default=0)
    packed.add_argument("--scale", type=int, default=4, help="enlargement of the 64x64 model images")
    packed.set_defaults(run=aloha_strip)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except (UsageError, FileNotFoundError) as err:  # anything else is a bug: its traceback stays
        print(f"sefm: error: {err}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
