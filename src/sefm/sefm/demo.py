"""``make demo``: the whole story on sim LanguageTable, with the fleet practising through ROS.

demonstrations -> Stage 1 (or the shipped Stage 1 checkpoint) -> measure s on fresh
demonstrations -> evaluate -> Stage 2 on the robots of the graph -> evaluate the chosen
checkpoint and the curve -> ``runs/<time>/report.md``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from sefm_interfaces.typed_config import StrictModel, load_config, parse_config
from sefm_policy.checkpoint import load_checkpoint, read_manifest
from sefm_reward.detector import StepsToGoDetector
from sefm_sim_bridge.envs import LANGUAGE_TABLE_FAMILIES
from sefm_trainer.datagen import DatagenConfig, generate
from sefm_trainer.evaluate import evaluate, paired_comparison
from sefm_trainer.sft import SFTConfig, train_sft
from sefm_trainer.stage2 import Stage2Config
from sefm_trainer.threshold import CalibrationConfig, calibrate_threshold

from .fleet_practice import practise_on_fleet
from .graph import load_graph, resolve
from .report import write_report

PRACTICE_SEED = 500_000
CALIBRATION_SEED = 900_000  # fresh demonstrations for measuring s: after practice's seeds, before evaluation's
STAGE1_RECORD = "stage1.json"  # beside a Stage 1 run: how many demonstrations, and the command


class DemoStage1(StrictModel):
    demonstrations: int = Field(1000, gt=0, description="scripted Block2Block episodes (the imitation dataset)")
    checkpoint: str | None = Field(
        None, description="a shipped Stage 1 run (best_bc, best_steps); FROM_SCRATCH ignores it"
    )
    sft_config: str = Field(..., description="YAML of SFTConfig keys (data and out are the demo's)")


class DemoCalibration(CalibrationConfig):
    """Measure s on fresh demonstrations (``sefm reward calibrate``) instead of trusting a number."""

    episodes: int = Field(100, gt=0, description="fresh demonstrations the reward model never saw")


class DemoConfig(StrictModel):
    task_family: Literal[LANGUAGE_TABLE_FAMILIES] = "block2block"
    graph: str = Field(..., description="graph YAML of the practising fleet (relative to this file)")
    stage1: DemoStage1
    stage2: dict = Field(default_factory=dict, description="Stage2Config keys (policy, reward_model, out: the demo's)")
    evaluation_episodes: int = Field(200, gt=0, description="held-out greedy episodes for Stage 1 and Stage 2")
    curve_every: int = Field(4, gt=0, description="evaluate every this many Stage 2 loops for the curve")
    curve_episodes: int = Field(100, gt=0)
    workers: int = Field(2, gt=0, description="processes generating demonstrations")
    calibration: DemoCalibration | None = Field(
        DemoCalibration(), description="measure s before Stage 2; null keeps stage2.success_threshold"
    )


def measure_threshold(cfg: DemoConfig, st2: Stage2Config, run: Path) -> tuple[Stage2Config, dict | None]:
    """Stage 2's settings with s as measured (the configured s stays when no threshold is precise)."""
    if cfg.calibration is None:
        return st2, None
    data = run / "calibration_demonstrations"
    generate(cfg.calibration.episodes, data, DatagenConfig(task_family=cfg.task_family), CALIBRATION_SEED, cfg.workers)
    sweep = CalibrationConfig.model_validate(cfg.calibration.model_dump(exclude={"episodes"}))
    result = calibrate_threshold(load_checkpoint(st2.reward_model), data, run / "calibration", sweep)
    s = result["recommended_threshold"]
    if s is None:
        print(
            f"demo: no threshold reaches precision {result['min_precision']}; s = {st2.success_threshold} as configured"
        )
    else:
        print(f"demo: success threshold s = {s}, measured")
    summary = {k: v for k, v in result.items() if k != "scores"} | {"figure": "calibration/calibration.png"}
    return (st2 if s is None else st2.model_copy(update={"success_threshold": s})), summary


def stage1(cfg: DemoConfig, base: Path, run: Path, from_scratch: bool) -> tuple[Path, dict]:
    """The Stage 1 run folder to start from, and its record (demonstrations used, command)."""
    shipped = resolve(cfg.stage1.checkpoint, base) if cfg.stage1.checkpoint else None
    if shipped and not from_scratch:
        record = json.loads((Path(shipped) / STAGE1_RECORD).read_text())
        if record.get("task_family", cfg.task_family) != cfg.task_family:
            raise ValueError(
                f"stage1.checkpoint {shipped} was trained on {record['task_family']}, the demo runs {cfg.task_family}"
            )
        print(f"demo: Stage 1 from the shipped {shipped} ({record['demonstrations']} demonstrations)")
        return Path(shipped), record
    data, out = run / "demonstrations", run / "stage1"
    generate(cfg.stage1.demonstrations, data, DatagenConfig(task_family=cfg.task_family), seed=0, workers=cfg.workers)
    sft = load_config(resolve(cfg.stage1.sft_config, base), SFTConfig, overrides={"data": str(data), "out": str(out)})
    train_sft(sft)
    record = {"demonstrations": cfg.stage1.demonstrations, "command": "make demo FROM_SCRATCH=1"}
    (out / STAGE1_RECORD).write_text(json.dumps(record, indent=2))
    return out, record


def run_demo(config_path: str | Path, runs_dir: str | Path = "runs", from_scratch: bool = False) -> Path:
    config_path = Path(config_path)
    cfg = load_config(config_path, DemoConfig)
    base = config_path.parent
    # Validate the Stage 2 settings now, not after Stage 1 (the paths are filled in below).
    st2 = parse_config(
        {**cfg.stage2, "policy": "", "reward_model": "", "out": "", "task_family": cfg.task_family},
        Stage2Config,
        f"{config_path} [stage2]",
    )
    run = Path(runs_dir).resolve() / time.strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True)
    shutil.copy(config_path, run / "demo_config.yaml")
    clock = {"start": time.monotonic()}

    stage1_dir, record = stage1(cfg, base, run, from_scratch)
    clock["stage1"] = time.monotonic()
    st2 = st2.model_copy(
        update={
            "policy": str(stage1_dir / "best_bc"),
            "reward_model": str(stage1_dir / "best_steps"),
            "out": str(run / "stage2"),
        }
    )
    st2, calibration = measure_threshold(cfg, st2, run)
    clock["calibrate"] = time.monotonic()
    detector = StepsToGoDetector(load_checkpoint(st2.reward_model), st2.success_threshold)
    before = evaluate(load_checkpoint(st2.policy), detector, cfg.evaluation_episodes, cfg.task_family)
    print(f"demo: Stage 1 success {before['success_rate']:.1%} {before['wilson95']}")
    clock["eval1"] = time.monotonic()

    snapshots = run / "stage2" / "curve"

    def keep_for_curve(path: Path, loop: int) -> None:
        if loop % cfg.curve_every == 0:
            shutil.copytree(path, snapshots / f"loop_{loop:04d}", dirs_exist_ok=True)

    graph = load_graph(resolve(cfg.graph, base))
    if graph.nodes.sim_bridge is None or graph.nodes.recorder is None:
        raise ValueError(f"{cfg.graph}: the demo needs simulated robots (nodes.sim_bridge) and nodes.recorder")
    nodes = {  # practice seeds apart from the demonstrations' (0..) and evaluation's (HELD_OUT_SEED..)
        "recorder": graph.nodes.recorder.model_copy(update={"out_dir": str(run / "practice")}),
        "sim_bridge": graph.nodes.sim_bridge.model_copy(update={"seed": PRACTICE_SEED, "task_family": cfg.task_family}),
    }
    graph = graph.model_copy(update={"nodes": graph.nodes.model_copy(update=nodes)})
    result = practise_on_fleet(st2, graph, base, log_dir=run / "logs", on_checkpoint=keep_for_curve)
    clock["stage2"] = time.monotonic()

    best = Path(st2.out) / "best"
    after = evaluate(load_checkpoint(best), detector, cfg.evaluation_episodes, cfg.task_family)
    print(f"demo: Stage 2 success {after['success_rate']:.1%} {after['wilson95']}")
    extra = {h["loop"]: h["extra_episodes"] for h in result["history"]}
    curve = [{"loop": 0, "extra_episodes": 0, **before}]
    for snap in sorted(snapshots.glob("loop_*")):
        loop = int(read_manifest(snap)["metadata"]["loop"])
        curve.append(
            {"loop": loop, "extra_episodes": extra[loop],
             **evaluate(load_checkpoint(snap), detector, cfg.curve_episodes, cfg.task_family)}
        )  # fmt: skip
    clock["eval2"] = time.monotonic()

    summary = {
        "task_family": cfg.task_family,
        "stage1_dir": str(stage1_dir),
        "demonstrations": record["demonstrations"],
        "stage1": before,
        "stage2": after,
        "paired": paired_comparison(before, after),
        "best_loop": result["best_loop"],
        "history": result["history"],
        "curve": curve,
        "calibration": calibration,
        "config": {"stage2": st2.model_dump(), "robots": graph.fleet.robots},
        "minutes": {
            "stage1": (clock["stage1"] - clock["start"]) / 60,
            "calibrate_threshold": (clock["calibrate"] - clock["stage1"]) / 60,
            "evaluate_stage1": (clock["eval1"] - clock["calibrate"]) / 60,
            "stage2": (clock["stage2"] - clock["eval1"]) / 60,
            "evaluate_stage2_and_curve": (clock["eval2"] - clock["stage2"]) / 60,
            "total": (clock["eval2"] - clock["start"]) / 60,
        },
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    report = write_report(summary, run)
    print(f"demo: report at {report}")
    return report
