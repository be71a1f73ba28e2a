"""EFM speed on this machine: SFT samples/s, act and steps-to-go latency, parameter count.

Prints one JSON object. Usage: python benchmarks/efm_bench.py [--repeats N] [--act-only]
[--config efm.yaml | --checkpoint DIR] (a chain of places acts once with each of its ``place_reads``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from sefm_interfaces.typed_config import load_config
from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.losses import bc_loss, instruction_loss, steps_to_go_loss
from sefm_policy.model import EFM
from sefm_policy.testing import aloha_observations, table_observations

READS = ("single", "half_patch")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def timed(fn, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    ms = sorted(1000 * x for x in times)
    return {"p50_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2)}


def sft_step_fn(model: EFM, batch: int):
    """One Stage 1 step: the batch split uniformly across BC, steps-to-go and instruction prediction."""
    n = batch // 3 + (batch % 3 > 0)
    obs = table_observations(batch, seed=1)
    bc_obs, steps_obs, instr_obs = obs[:n], obs[n : 2 * n], obs[2 * n :]
    rng = np.random.default_rng(1)
    actions = rng.uniform(-0.1, 0.1, (n, 2))
    if model.embodiment.reasoning_slots:  # a chain of places says them before the action
        tokens = model.embodiment.action.encode(actions, rng.uniform(0, 1, (n, model.embodiment.action.places, 2)))
    else:
        tokens = model.embodiment.action.encode(actions)
    steps = rng.integers(0, 101, n)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = (
            bc_loss(model, bc_obs, tokens).loss
            + steps_to_go_loss(model, steps_obs, steps).loss
            + instruction_loss(model, instr_obs, [o.instruction for o in instr_obs]).loss
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML file with an EFM config (default: the tiny model)")
    source.add_argument("--checkpoint", help="a saved policy (e.g. checkpoints/stage1_block2block4/best_bc)")
    parser.add_argument(
        "--act-only", action="store_true", help="LanguageTable act latency alone (a large model's SFT step is slow)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
        config = model.config
    else:
        config = load_config(args.config, EFMConfig) if args.config else EFMConfig()
        model = EFM.build(config)
    result = {
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "model": {
            "embodiment": config.embodiment,
            "pretrained_path": config.pretrained_path,
            "image_size": model.image_size,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    }
    if not args.act_only:
        model.train()
        sft = timed(sft_step_fn(model, 32), max(5, args.repeats // 3))
        result["sft_batch32"] = {**sft, "samples_per_s": round(32 / (sft["p50_ms"] / 1000), 1)}
    model.eval()
    acting = {"act_language_table": model}
    if config.action_from == "places":  # a chain of places: each way of reading them
        acting = {f"act_{r}_read{'s' * (r != 'single')}": model.reconfigured(place_reads=r).eval() for r in READS}
    for b in (1, 16):
        obs = table_observations(b)
        for name, policy in acting.items():
            result[f"{name}_batch{b}"] = timed(lambda o=obs, p=policy: p.sample_actions(o), args.repeats)
    if args.act_only:
        print(json.dumps(result, indent=2))
        return
    aloha = EFM.build(
        EFMConfig(embodiment="aloha") if args.checkpoint else config.model_copy(update={"embodiment": "aloha"})
    )
    aloha.eval()
    obs = aloha_observations(1)
    result["act_aloha_70_tokens_batch1"] = timed(lambda: aloha.sample_actions(obs), max(5, args.repeats // 3))
    for b in (1, 64):
        obs = table_observations(b)

        def d(o=obs):
            with torch.no_grad():
                model.expected_steps_to_go(o)

        result[f"steps_to_go_batch{b}"] = timed(d, args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
