"""Practice curves of Stage 2 runs side by side: true success per loop against extra episodes.

One 16-episode loop's success has a standard error of about 0.12, so a single run's curve says
little loop by loop; a rolling mean over a few loops shows a trend if there is one. Reads each
run's ``stage2.jsonl`` (or a copy of it), writes one PNG, prints JSON: per run, the mean practice
success of its first and last ``--window`` loops.

    python benchmarks/plot_practice.py --out curves.png --stage1 0.50 \\
        "KL 0.1=runs/oracle_coarse_succ_kl/stage2.jsonl" "co-training=runs/oracle_cotrain/stage2.jsonl"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no loops recorded")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="LABEL=PATH to a stage2.jsonl")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--window", type=int, default=5, help="loops in the rolling mean")
    p.add_argument("--stage1", type=float, help="Stage 1's greedy success, drawn as a line")
    p.add_argument("--title", default="Stage 2 practice, true success per loop")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    summary = {}
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"{spec!r}: expected LABEL=PATH")
        rows = read(Path(path))
        x = np.array([r["extra_episodes"] for r in rows])
        y = np.array([r["ground_truth_success"] for r in rows])
        k = min(args.window, len(y))
        rolling = np.convolve(y, np.ones(k) / k, mode="valid")
        (line,) = ax.plot(x[k - 1 :], rolling, label=f"{label} (mean of {k})")
        ax.scatter(x, y, s=6, alpha=0.3, color=line.get_color())
        summary[label] = {
            "loops": len(rows),
            "extra_episodes": int(x[-1]),
            "first_loops_success": float(y[:k].mean()),
            "last_loops_success": float(y[-k:].mean()),
        }
    if args.stage1 is not None:
        ax.axhline(args.stage1, color="black", linestyle="--", linewidth=1, label="Stage 1, greedy")
    ax.set_xlabel("extra episodes")
    ax.set_ylabel("practice success (true)")
    ax.set_ylim(0, 1)
    ax.set_title(args.title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out)
    plt.close(fig)
    print(json.dumps({"out": args.out, "window": args.window, "runs": summary}, indent=2))


if __name__ == "__main__":
    main()
