"""One constructor for every simulated task family, and what each embodiment's model sees."""

from __future__ import annotations

from .tasks import FAMILIES as LANGUAGE_TABLE_FAMILIES

ALOHA_FAMILIES = ("insertion",)
TASK_FAMILIES = (*LANGUAGE_TABLE_FAMILIES, *ALOHA_FAMILIES)


def embodiment_of(task_family: str) -> str:
    if task_family not in TASK_FAMILIES:
        raise ValueError(f"unknown task family {task_family!r}; expected one of {TASK_FAMILIES}")
    return "aloha" if task_family in ALOHA_FAMILIES else "language_table"


def make_env(task_family: str, image_size: tuple[int, int] = (96, 96), max_steps: int = 100, render_images=True):
    """LanguageTable renders ``image_size`` frames; ALOHA its four cameras at their default size."""
    if embodiment_of(task_family) == "aloha":
        from .aloha import AlohaInsertionEnv

        return AlohaInsertionEnv(max_steps=max_steps, render_images=render_images)
    from .language_table import LanguageTableEnv

    return LanguageTableEnv(task_family, image_size=image_size, max_steps=max_steps, render_images=render_images)


def model_view(observation: dict):
    """(frame, joint state) of an env observation as an episode timeline stores them: one image
    for LanguageTable (the model pairs it with the previous one), the camera tuple for ALOHA."""
    if "images" in observation:
        from .aloha import CAMERAS

        return tuple(observation["images"][c] for c in CAMERAS), observation["qpos"]
    return observation["rgb"], None


def run_demonstration(env, demo, seed: int) -> dict:
    """One scripted episode from ``seed``; returns the env's final info (success, steps, ...)."""
    env.reset(seed=seed)
    demo.reset(seed)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(demo.act(env))
        done = terminated or truncated
    return info
