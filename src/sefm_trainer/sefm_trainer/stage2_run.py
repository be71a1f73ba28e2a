"""The bookkeeping around Stage 2's loop (``stage2.self_improve``): the policy, optimizer and
frozen detector, resuming after a kill, the per-loop record in ``stage2.jsonl`` and TensorBoard,
the moving window of detected success that keeps ``best`` and stops on a plateau, and the
resume point written after every loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from sefm_policy.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from sefm_reward.detector import StepsToGoDetector

from .consensus import check_policy
from .cotrain import Demonstrations
from .trainer_state import decode_rng, encode_rng, load_trainer_state, save_resume_point, state_path


class Stage2Run:
    def __init__(self, cfg, source) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.cfg, self.source = cfg, source
        self.out = out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        last = out / "last"
        resuming = (last / "manifest.json").exists()
        self.policy = load_checkpoint(last if resuming else cfg.policy).train()
        self.policy.freeze_vision_tower()
        self.detector = StepsToGoDetector(load_checkpoint(cfg.reward_model), cfg.success_threshold)
        self.reference = None
        if cfg.kl_coef > 0:  # the Stage 1 policy, frozen, that the KL term holds practice to
            self.reference = load_checkpoint(cfg.policy).eval().requires_grad_(False)
        self.reader = None  # who says the places consensus_coef labels with, where not the policy
        if cfg.consensus_coef > 0:
            if cfg.consensus_from == "reward_model":
                self.reader = self.detector.model
            check_policy(self.policy, self.reader)
        self.demonstrations = None
        if cfg.demo_coef > 0:
            self.demonstrations = Demonstrations(cfg.demonstrations, self.policy.config.embodiment)
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.lr)
        self.state = {"best": [-1.0, None], "since_best": 0, "extra_episodes": 0}
        self.history, self.start = [], 0
        if resuming:
            self.start, self.state = load_trainer_state(
                self.optimizer, state_path(out, read_manifest(last)["metadata"]["loop"])
            )
            self.rng.bit_generator.state = self.state["rng"]
            source.restore(self.state["source"])
            torch.set_rng_state(decode_rng(self.state["torch"]))
            self.history = [h for h in _read_jsonl(out / "stage2.jsonl") if h["loop"] <= self.start]
            print(f"stage 2: resuming {out} after loop {self.start}")
        with (out / "stage2.jsonl").open("w") as f:  # drops a record written after the last resume point
            f.writelines(json.dumps(h) + "\n" for h in self.history)
        self.metrics = (out / "stage2.jsonl").open("a")
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def loops(self, progress: bool):
        """Loop numbers from the one after the resume point, until ``loops`` or a plateau."""
        from tqdm import tqdm

        for loop in tqdm(range(self.start + 1, self.cfg.loops + 1), desc="stage 2", unit="loop", disable=not progress):
            if self.cfg.patience and self.state["since_best"] >= self.cfg.patience:
                return
            yield loop

    def collect(self, loop: int) -> list:
        self.policy.eval()
        with torch.no_grad():
            episodes = self.source.collect(self.policy, self.detector, self.cfg.updates * self.cfg.minibatch, loop)
        self.policy.train()
        return episodes

    def publish(self, loop: int, episodes: list, updates: list[dict[str, float]]) -> Path:
        """Record the loop (with the mean of each update term, e.g. ``rl_kl``), keep ``best`` by the
        moving window, and write the resume point (the checkpoint the fleet's policies reload)."""
        self.state["extra_episodes"] += len(episodes)
        practice = [ep for ep in episodes if not ep.baseline]
        record = {
            "loop": loop,
            "episodes": len(episodes),
            "extra_episodes": self.state["extra_episodes"],
            "detected_success": float(np.mean([ep.detected_success for ep in practice])),
            "ground_truth_success": float(np.mean([ep.ground_truth_success for ep in practice])),
            "mean_length": float(np.mean([ep.length for ep in practice])),
            **{key.replace("/", "_"): float(np.mean([u[key] for u in updates])) for key in updates[0]},
        }
        greedy = [ep for ep in episodes if ep.baseline]
        if greedy:  # the greedy baseline's runs: how the policy evaluation acts as is doing, loop by loop
            record["greedy_detected_success"] = float(np.mean([ep.detected_success for ep in greedy]))
            record["greedy_ground_truth_success"] = float(np.mean([ep.ground_truth_success for ep in greedy]))
        recent = [*self.history, record][-self.cfg.window :]
        record["window_detected_success"] = window = float(np.mean([h["detected_success"] for h in recent]))
        if window > self.state["best"][0]:
            self.state["best"], self.state["since_best"] = [window, loop], 0
            meta = {"version": loop, "loop": loop, "window_detected_success": window}
            save_checkpoint(self.policy, self.out / "best", meta)
        else:
            self.state["since_best"] += 1
        self.history.append(record)
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        self.state.update(
            rng=self.rng.bit_generator.state, source=self.source.state(), torch=encode_rng(torch.get_rng_state())
        )
        path = save_resume_point(
            self.out, self.policy, self.optimizer, loop, self.state, {"version": loop, "loop": loop}
        )
        for key, value in record.items():
            if key != "loop":
                self.writer.add_scalar(f"stage2/{key}", value, record["extra_episodes"])
        self.writer.flush()
        return path

    def close(self) -> dict:
        self.metrics.close()
        self.writer.close()
        best_window, best_loop = self.state["best"]
        return {"history": self.history, "best_loop": best_loop, "best_window_detected_success": best_window}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
