"""A PNG of what the model sees of ALOHA: it needs both the sim and the model's image packing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sefm_policy.config import EFMConfig
from sefm_policy.embodiment import embodiment_for, observation_at
from sefm_sim_bridge.aloha_demonstrator import InsertionDemonstrator
from sefm_sim_bridge.envs import make_env, model_view


def aloha_model_images(out: str | Path, seed: int = 0, scale: int = 4) -> Path:
    """The two packed images the model sees ([top; angle], [left wrist; right wrist]) at the start,
    the grasp and the end of one scripted insertion, enlarged ``scale`` times."""
    env, demo = make_env("insertion", max_steps=25), InsertionDemonstrator()
    try:
        obs, _ = env.reset(seed=seed)
        demo.reset(seed)
        views, done = [model_view(obs)], False
        while not done:
            obs, _, terminated, truncated, info = env.step(demo.act(env))
            views.append(model_view(obs))
            done = terminated or truncated
    finally:
        env.close()
    frames, states = [f for f, _ in views], [s for _, s in views]
    packing = embodiment_for(EFMConfig(embodiment="aloha"))
    moments = {"start": 0, "grasp": round(0.3 * (len(views) - 1)), "end": len(views) - 1}
    columns = []
    for name, t in moments.items():
        images = packing.model_images(observation_at("aloha", frames, t, "", states))
        big = [cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for im in images]
        column = np.concatenate([big[0], np.full((6, big[0].shape[1], 3), 255, np.uint8), big[1]])
        banner = np.full((26, column.shape[1], 3), 255, np.uint8)
        label = f"{name} (step {t}/{len(views) - 1})" + (" inserted" if name == "end" and info["success"] else "")
        cv2.putText(banner, label, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
        columns.append(np.pad(np.concatenate([banner, column]), ((0, 0), (0, 8), (0, 0)), constant_values=255))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(columns, axis=1), cv2.COLOR_RGB2BGR))
    return out
