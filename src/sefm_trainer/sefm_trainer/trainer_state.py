"""Resumable training state beside a ``last`` checkpoint: AdamW moments, step and best scores in
safetensors (no pickle), written atomically; Stages 0, 1 and 2 share it."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from sefm_policy.checkpoint import save_checkpoint


def state_path(out: Path, step: int) -> Path:
    return out / f"trainer_state_{step:08d}.safetensors"


EXTRA = "extra."  # prefix of tensors saved beside the optimizer's (e.g. a training-only head's weights)


def save_trainer_state(
    optimizer: torch.optim.Optimizer, path: Path, step: int, best: dict, extra: dict[str, torch.Tensor] | None = None
) -> None:
    tensors = {EXTRA + k: v.detach().clone().contiguous() for k, v in (extra or {}).items()}
    meta = {"step": step, "best": best, "param_groups": []}
    for g, group in enumerate(optimizer.param_groups):
        meta["param_groups"].append({k: v for k, v in group.items() if k != "params"})
        for i, p in enumerate(group["params"]):
            for key, value in optimizer.state.get(p, {}).items():
                tensors[f"{g}.{i}.{key}"] = value.detach().clone().reshape(value.shape or (1,))
    tmp = path.with_name(path.name + ".tmp")
    safetensors.torch.save_file(tensors, str(tmp), metadata={"trainer": json.dumps(meta)})
    os.replace(tmp, path)


def load_trainer_state(optimizer: torch.optim.Optimizer, path: Path) -> tuple[int, dict]:
    with safetensors.safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["trainer"])
        for g, group in enumerate(optimizer.param_groups):
            for i, p in enumerate(group["params"]):
                state = {}
                for key in ("step", "exp_avg", "exp_avg_sq"):
                    name = f"{g}.{i}.{key}"
                    if name in f.keys():  # noqa: SIM118 - safe_open has no __contains__
                        value = f.get_tensor(name)
                        state[key] = value.reshape(()) if key == "step" else value.to(p.device)
                if state:
                    optimizer.state[p] = state
    return meta["step"], meta["best"]


def load_trainer_extra(path: Path) -> dict[str, torch.Tensor]:
    """The tensors saved with ``extra`` beside the optimizer state."""
    with safetensors.safe_open(str(path), framework="pt") as f:
        return {k[len(EXTRA) :]: f.get_tensor(k) for k in f.keys() if k.startswith(EXTRA)}  # noqa: SIM118


def save_resume_point(
    out: Path,
    model,
    optimizer: torch.optim.Optimizer,
    step: int,
    best: dict,
    metadata: dict,
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Optimizer state (and ``extra`` tensors) first, then the weights as ``last`` (an atomic
    rename): ``last`` always has its state; older states are removed."""
    save_trainer_state(optimizer, state_path(out, step), step, best, extra)
    path = save_checkpoint(model, out / "last", {**metadata, "step": step})
    for old in out.glob("trainer_state_*.safetensors"):
        if old != state_path(out, step):
            old.unlink()
    return path


def encode_rng(state: torch.Tensor) -> str:
    """A torch RNG state (uint8 tensor) as JSON-safe text, for a resume point."""
    return base64.b64encode(state.numpy().tobytes()).decode()


def decode_rng(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)
