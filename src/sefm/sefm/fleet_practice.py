"""Stage 2 on a fleet from one call: bring up the graph, run the trainer node beside it, stop all.

The graph's policy nodes start from their configured checkpoint but its episode managers start
paused: the learner announces version 1, waits until every robot acts with it, then resumes.
"""

from __future__ import annotations

import threading
from pathlib import Path

import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from sefm_trainer.node_params import TrainerParams
from sefm_trainer.stage2 import Stage2Config
from sefm_trainer.trainer_node import TrainerNode

from .bringup import Bringup
from .graph import GraphConfig, resolve


class FleetDied(RuntimeError):
    pass


def check_alive(bringup: Bringup) -> None:
    logs = bringup.dead_logs()
    if logs:
        raise FleetDied(f"node(s) of the fleet exited during Stage 2: {logs}")


def learner_graph(graph: GraphConfig, cfg: Stage2Config) -> GraphConfig:
    """The graph with its episode managers waiting for the learner, and the Stage 2 config's
    checkpoints, temperature, threshold s and episode length on its nodes (one source of truth)."""
    if cfg.greedy_steps or cfg.baseline != "none":
        raise ValueError(
            "greedy_steps and baseline: greedy are in-process practice only (GymSource); the fleet's policy nodes "
            "always sample"
        )
    nodes = graph.nodes
    missing = [n for n in ("policy", "reward", "recorder", "episode_manager") if getattr(nodes, n) is None]
    if missing:
        raise ValueError(f"fleet Stage 2 needs nodes.{', nodes.'.join(missing)} in the graph")
    update = {
        "policy": nodes.policy.model_copy(
            update={
                "checkpoint": cfg.policy,
                "temperature": cfg.temperature,
                "chain_temperature": cfg.chain_temperature,
            }
        ),
        "reward": nodes.reward.model_copy(
            update={"checkpoint": cfg.reward_model, "success_threshold": cfg.success_threshold}
        ),
        "episode_manager": nodes.episode_manager.model_copy(update={"start_paused": True, "max_steps": cfg.max_steps}),
    }
    return graph.model_copy(update={"nodes": nodes.model_copy(update=update)})


def practise_on_fleet(
    cfg: Stage2Config,
    graph: GraphConfig,
    base_dir: str | Path = ".",
    log_dir: str | Path | None = None,
    domain_id: int | None = None,
    on_checkpoint=None,
    timeout_s: float = 600.0,
) -> dict:
    """Run :func:`~sefm_trainer.stage2.self_improve` with the graph's robots as the episode source."""
    graph = learner_graph(graph, cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "stage2_config.yaml"
    config_path.write_text(yaml.safe_dump(cfg.model_dump()))
    namespaces = [f"/{graph.fleet.namespace_prefix}{i}" for i in range(graph.fleet.robots)]
    params = TrainerParams(
        stage="stage2",
        config=str(config_path),
        robots=namespaces,
        episodes_dir=resolve(graph.nodes.recorder.out_dir, Path(base_dir)),
        timeout_s=timeout_s,
    )
    with Bringup(graph, base_dir=base_dir, log_dir=log_dir, domain_id=domain_id) as bringup:
        context = Context()
        rclpy.init(context=context, domain_id=int(bringup.env.get("ROS_DOMAIN_ID", "0")))
        node = TrainerNode(params, context=context, health=lambda: check_alive(bringup))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            return node.stage2(cfg, on_checkpoint=on_checkpoint)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown(context=context)
            spinner.join(timeout=5)
