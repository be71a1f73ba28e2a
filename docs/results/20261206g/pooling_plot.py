"""Precision against recall of the 8-block detector over s, one curve per number of frames d pools its
places over (place_frames), on held demonstrations (sefm reward calibrate's scoring: a firing up to
2 steps early is right) and on the policy's own episodes (benchmarks/detector_on_rollouts.py: right
only on a done frame). The shaded corner is #14's bar: precision >= 0.9 with recall >= 0.7.
Usage: python pooling_plot.py OUT.png (reads the JSON files beside it and in ../20261206f)."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
WINDOWS = [1, 2, 3, 4, 5, 6, 8]  # a colour each, the same in every panel


def demonstrations():
    out = {}
    for path in (
        HERE.parent / "20261206f" / "places_over_frames_hold_taught.json",
        HERE / "places_over_frames_w5_w6_w8.json",
    ):
        for key, v in json.loads(path.read_text()).items():
            if key.startswith("said_over_"):
                out[int(key.split("_")[2])] = v["scores"]
    return out


def episodes(*names):
    out = {}
    for name in names:
        if (HERE / name).exists():
            for model, sweep in json.loads((HERE / name).read_text())["sweeps"].items():
                last = model.rstrip("/").rsplit("/", 1)[-1]
                out[int(last.rsplit("_w", 1)[1]) if "_w" in last else 1] = sweep["scores"]
    return out


panels = [
    ("100 held demonstrations", demonstrations()),
    ("60 practice episodes (sampled)", episodes("detector_on_rollouts_w4_w1.json", "detector_on_rollouts_w8_w6.json")),
    ("150 greedy Stage 1 episodes", episodes("detector_on_greedy_w8_w4.json")),
]
panels = [p for p in panels if p[1]]
fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True)
summary = {}
for ax, (title, curves) in zip(axes, panels, strict=True):
    ax.fill_between([0.7, 1.0], 0.9, 1.0, color="tab:green", alpha=0.15, lw=0)
    for w in sorted(curves):
        points = [(s["recall"], s["precision"]) for s in curves[w] if s["precision"] is not None]
        ax.plot(*zip(*points, strict=True), ".-", label=f"w = {w}", lw=1, color=f"C{WINDOWS.index(w)}")
        summary.setdefault(title, {})[w] = max(points, key=lambda rp: min(rp[0] / 0.7, rp[1] / 0.9))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("recall")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
axes[0].set_ylabel("precision")
for ax in axes:
    ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[1], dpi=110)
print(json.dumps({"closest to the bar (recall, precision)": summary}, indent=1))
