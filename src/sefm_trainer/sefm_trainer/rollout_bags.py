"""A policy's episodes written as episode bags, like demonstrations: kept to replay or inspect
with rosbag2 tools, and pooled with demonstrations where a success detector must be judged on
the policy's own failures (``sefm reward calibrate --data demos rollouts``)."""

from __future__ import annotations

from pathlib import Path

from sefm_interfaces.episode_protocol import EpisodeMeta, EpisodeStart
from sefm_sim_bridge.envs import embodiment_of

from .bag_writer import EpisodeWriter
from .datagen import EPOCH_NS, SEED_SPACING_NS, episode_name
from .rollout import PracticeEpisode

CONTROL_HZ = 10.0  # LanguageTable's control rate, as its demonstrations are recorded


def write_rollout(
    ep: PracticeEpisode, out_dir: str | Path, task_family: str, policy_version: str, namespace: str = "/robot_0"
) -> Path:
    """One LanguageTable episode as a bag: its frames, the sampled tokens and the commands they
    decode to, and ground truth's verdict in the metadata (named and stamped by its seed, as
    ``sefm datagen`` names a demonstration)."""
    if embodiment_of(task_family) != "language_table" or ep.embodiment != "language_table":
        raise ValueError(f"only LanguageTable episodes are written as bags, got {task_family} ({ep.embodiment})")
    if len(ep.frames) != ep.length + 1 or len(ep.actions) != ep.length:
        raise ValueError(
            f"episode {ep.seed}: need {ep.length} actions and {ep.length + 1} frames, "
            f"got {len(ep.actions)} and {len(ep.frames)}"
        )
    step_ns = int(1e9 / CONTROL_HZ)
    t0 = EPOCH_NS + ep.seed * SEED_SPACING_NS
    with EpisodeWriter(out_dir, episode_name(task_family, ep.seed), namespace) as writer:
        writer.event(t0, EpisodeStart(instruction=ep.instruction, seed=ep.seed))
        writer.instruction(t0, ep.instruction)
        writer.image("front", t0, ep.frames[0])
        for t, (tokens, action) in enumerate(zip(ep.tokens, ep.actions, strict=True)):
            stamp = t0 + t * step_ns
            writer.action_tokens(stamp + 1000, tokens)
            writer.planar_command(stamp + 1000, stamp, action, 1.0 / CONTROL_HZ)
            writer.image("front", stamp + step_ns, ep.frames[t + 1])
        meta = EpisodeMeta(
            instruction=ep.instruction,
            embodiment="language_table",
            length=ep.length,
            success=ep.ground_truth_success,
            termination=ep.termination,
            seed=ep.seed,
            policy_version=policy_version,
            task_family=task_family,
            namespace=namespace,
            cameras=["front"],
            control_hz=CONTROL_HZ,
        )
        return writer.commit(meta, t0 + ep.length * step_ns + 1000)
