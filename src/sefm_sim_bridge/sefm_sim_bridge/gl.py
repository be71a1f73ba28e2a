"""Pick an offscreen OpenGL backend for MuJoCo before it is imported."""

from __future__ import annotations

import ctypes.util
import os

BACKENDS = {"egl": "EGL", "osmesa": "OSMesa"}


def ensure_offscreen_gl() -> str:
    """Keep MUJOCO_GL if set, else choose EGL (Mesa) or OSMesa by what is installed."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        return chosen
    for backend, lib in BACKENDS.items():
        if ctypes.util.find_library(lib):
            os.environ["MUJOCO_GL"] = backend
            return backend
    raise RuntimeError(
        "no offscreen OpenGL for MuJoCo: install Mesa's EGL (apt install libegl1 libgl1-mesa-dri) "
        "or OSMesa (apt install libosmesa6), or set MUJOCO_GL"
    )
