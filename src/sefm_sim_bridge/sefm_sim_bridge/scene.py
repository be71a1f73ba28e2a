"""The LanguageTable / BananaTable scene as MJCF built in code.

A flat board seen by a fixed camera straight from above, a round end effector moved
kinematically (mocap), and free-moving objects: blocks in four colours × four shapes
(every shape is a union of convex prisms, so it collides as it looks) or a banana made
of capsules along an arc (curved, so an off-centre push spins it).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

# Workspace where objects start and locations are named: x to the right of the image, y away
# from the robot ("top" of the image). The walled board extends BOARD_MARGIN beyond it, and the
# effector reaches all of the board, so it can always get behind an object to push it.
X_RANGE = (-0.30, 0.30)
Y_RANGE = (-0.20, 0.20)
BOARD_MARGIN = 0.06
EFFECTOR_RADIUS = 0.018
BLOCK_HALF = 0.022  # half-extent of a block's footprint
BLOCK_HEIGHT = 0.03
# The camera looks straight down and frames the board exactly (x, y half extents): every pixel of
# the model image is board. Frames are rendered at the board's aspect and stretched to square, so
# a block spans 6 x 8 px at 96 px where the old angled view gave it 3-4 px at 64.
VIEW_HALF = ((X_RANGE[1] - X_RANGE[0]) / 2 + BOARD_MARGIN, (Y_RANGE[1] - Y_RANGE[0]) / 2 + BOARD_MARGIN)
CAMERA_HEIGHT = 1.0


def image_point(xy) -> tuple[float, float]:
    """Board (x, y) in metres -> (column, row) in [0, 1] of the camera image (row 0: the far edge)."""
    return (xy[0] + VIEW_HALF[0]) / (2 * VIEW_HALF[0]), (VIEW_HALF[1] - xy[1]) / (2 * VIEW_HALF[1])


def board_point(column: float, row: float) -> tuple[float, float]:
    """Inverse of ``image_point``."""
    return column * 2 * VIEW_HALF[0] - VIEW_HALF[0], VIEW_HALF[1] - row * 2 * VIEW_HALF[1]


COLORS = {
    "red": (0.86, 0.15, 0.15),
    "blue": (0.15, 0.35, 0.90),
    "green": (0.15, 0.70, 0.25),
    "yellow": (0.95, 0.80, 0.10),
}
SHAPES = ("cube", "moon", "star", "pentagon")
# The eight blocks of LanguageTable: each colour twice, each shape twice.
BLOCKS = [
    ("red", "moon"),
    ("red", "pentagon"),
    ("blue", "moon"),
    ("blue", "cube"),
    ("green", "cube"),
    ("green", "star"),
    ("yellow", "star"),
    ("yellow", "pentagon"),
]
# LanguageTable's 4-block set: one block per colour, so a colour word alone names it.
FOUR_BLOCKS = [("red", "moon"), ("blue", "cube"), ("green", "star"), ("yellow", "pentagon")]
BANANA_COLOR = (0.98, 0.85, 0.25)
OFF_BOARD = (5.0, 0.0, -1.0)  # where an unused block waits, far outside the camera's view


@dataclass(frozen=True)
class SceneObject:
    name: str  # "red star", "banana"
    body: str  # MJCF body name


def _prism(points_2d: list[tuple[float, float]], height: float) -> str:
    verts = [f"{x:.5f} {y:.5f} {z:.5f}" for z in (-height / 2, height / 2) for x, y in points_2d]
    return " ".join(verts)


def _polygon(n: int, radius: float, phase: float = math.pi / 2) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def shape_meshes() -> dict[str, list[str]]:
    """Vertex lists of the convex prisms that make up each shape (MuJoCo takes their hulls)."""
    h, r = BLOCK_HEIGHT, BLOCK_HALF
    cube = [_prism([(-r * 0.85, -r * 0.85), (r * 0.85, -r * 0.85), (r * 0.85, r * 0.85), (-r * 0.85, r * 0.85)], h)]
    pentagon = [_prism(_polygon(5, r), h)]
    inner = _polygon(5, r * 0.42)
    outer = _polygon(5, r * 1.15)
    star = [_prism(inner, h)]
    for k in range(5):
        star.append(_prism([inner[(k + 2) % 5], outer[k], inner[(k + 3) % 5]], h))
    moon = []
    arc = np.linspace(-0.75 * math.pi, 0.75 * math.pi, 6)
    for a0, a1 in itertools.pairwise(arc):
        ro, ri = r * 1.05, r * 0.55
        quad = [
            (ro * math.cos(a0), ro * math.sin(a0)),
            (ro * math.cos(a1), ro * math.sin(a1)),
            (ri * math.cos(a1) + 0.35 * r, ri * math.sin(a1)),
            (ri * math.cos(a0) + 0.35 * r, ri * math.sin(a0)),
        ]
        moon.append(_prism(quad, h))
    return {"cube": cube, "moon": moon, "star": star, "pentagon": pentagon}


def _object_body(name: str, geoms: str) -> str:
    return f'<body name="{name}" pos="0 0 {BLOCK_HEIGHT / 2 + 0.001}"><freejoint/>{geoms}</body>'


def build_mjcf(objects: str) -> tuple[str, list[SceneObject]]:
    """``objects`` is "blocks" (the 8 LanguageTable blocks) or "banana"."""
    assets, bodies, scene_objects = [], [], []
    common = 'material="matte" condim="4" friction="0.5 0.02 0.001" density="400" solref="0.01 1"'
    if objects == "blocks":
        meshes = shape_meshes()
        for shape, parts in meshes.items():
            for i, verts in enumerate(parts):
                assets.append(f'<mesh name="{shape}{i}" vertex="{verts}"/>')
        for color, shape in BLOCKS:
            rgb = " ".join(f"{c:.3f}" for c in COLORS[color])
            body = f"{color}_{shape}"
            geoms = "".join(
                f'<geom type="mesh" mesh="{shape}{i}" rgba="{rgb} 1" {common}/>' for i in range(len(meshes[shape]))
            )
            bodies.append(_object_body(body, geoms))
            scene_objects.append(SceneObject(f"{color} {shape}", body))
    elif objects == "banana":
        rgb = " ".join(f"{c:.3f}" for c in BANANA_COLOR)
        arc = np.linspace(-0.9, 0.9, 6)
        radius, geoms = 0.07, []
        pts = [(radius * math.sin(a), radius * (1 - math.cos(a)) - 0.02) for a in arc]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            geoms.append(
                f'<geom type="capsule" fromto="{x0:.4f} {y0:.4f} 0 {x1:.4f} {y1:.4f} 0" size="0.012" '
                f'rgba="{rgb} 1" {common}/>'
            )
        bodies.append(
            f'<body name="banana" pos="0 0 0.013"><freejoint/>{"".join(geoms)}'
            f'<geom type="sphere" size="0.008" pos="{pts[0][0]:.4f} {pts[0][1]:.4f} 0" rgba="0.35 0.25 0.1 1" '
            'contype="0" conaffinity="0"/></body>'
        )
        scene_objects.append(SceneObject("banana", "banana"))
    else:
        raise ValueError(f"unknown objects {objects!r}; expected 'blocks' or 'banana'")

    (x0, x1), (y0, y1) = X_RANGE, Y_RANGE
    hx, hy = (x1 - x0) / 2 + BOARD_MARGIN, (y1 - y0) / 2 + BOARD_MARGIN
    fovy = math.degrees(2 * math.atan(VIEW_HALF[1] / CAMERA_HEIGHT))
    xml = f"""
<mujoco model="language_table">
  <option timestep="0.005" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0"/><global offwidth="640" offheight="640"/><headlight diffuse="0.25 0.25 0.25"/>
  </visual>
  <asset>
    <texture name="board" type="2d" builtin="flat" rgb1="0.93 0.93 0.90" width="8" height="8"/>
    <material name="board" texture="board" reflectance="0"/>
    <material name="matte" specular="0" shininess="0"/>
    {"".join(assets)}
  </asset>
  <worldbody>
    <light pos="0 -0.2 1.2" dir="0 0.15 -1" diffuse="0.45 0.45 0.45" castshadow="false"/>
    <light pos="0 0 2" dir="0 0 -1" diffuse="0.2 0.2 0.2" castshadow="false"/>
    <geom name="board" type="box" size="{hx} {hy} 0.01" pos="0 0 -0.01" material="board" friction="0.4 0.02 0.001"/>
    <geom type="box" size="{hx} 0.01 0.02" pos="0 {hy + 0.01} 0.01" rgba="0.3 0.3 0.35 1"/>
    <geom type="box" size="{hx} 0.01 0.02" pos="0 {-hy - 0.01} 0.01" rgba="0.3 0.3 0.35 1"/>
    <geom type="box" size="0.01 {hy} 0.02" pos="{hx + 0.01} 0 0.01" rgba="0.3 0.3 0.35 1"/>
    <geom type="box" size="0.01 {hy} 0.02" pos="{-hx - 0.01} 0 0.01" rgba="0.3 0.3 0.35 1"/>
    <camera name="front" pos="0 0 {CAMERA_HEIGHT}" xyaxes="1 0 0 0 1 0" fovy="{fovy:.4f}"/>
    <body name="effector" mocap="true" pos="0 {y0} 0.02">
      <geom type="cylinder" size="{EFFECTOR_RADIUS} 0.02" rgba="0.2 0.2 0.2 1" friction="0.1 0.005 0.0001"/>
    </body>
    {"".join(bodies)}
  </worldbody>
</mujoco>
"""
    return xml, scene_objects
