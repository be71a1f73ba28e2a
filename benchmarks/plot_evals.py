"""Success rates of several checkpoints side by side, each with its Wilson 95% interval.

A gain counts when the intervals do not overlap, so the plot draws the intervals, not only the
rates. Reads ``sefm eval --out`` JSONs, groups them by seed range (one marker per range), writes
one PNG and prints JSON: per label and seed range, the rate and its interval. ``LABEL=A+B`` counts
the evals of adjacent seed ranges as one (halves run side by side on two cores).

    python benchmarks/plot_evals.py --out evals.png \\
        "polish=runs/eval_polish.json" "scenes=runs/eval_scenes.json" "scenes=runs/eval_s2_a.json+runs/eval_s2_b.json"
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

from sefm_trainer.evaluate import wilson_interval


def pooled(summaries: list[dict], item: str) -> dict:
    """One eval of several over adjacent seed ranges: successes and episodes added up."""
    if len(summaries) == 1:
        return summaries[0]
    summaries = sorted(summaries, key=lambda s: s["seeds"][0])
    if any(a["seeds"][1] + 1 != b["seeds"][0] for a, b in pairwise(summaries)):
        raise SystemExit(f"{item!r}: the seed ranges {[s['seeds'] for s in summaries]} are not adjacent")
    wins = sum(round(s["success_rate"] * s["episodes"]) for s in summaries)
    episodes = sum(s["episodes"] for s in summaries)
    low, high = wilson_interval(wins, episodes)
    seeds = [summaries[0]["seeds"][0], summaries[-1]["seeds"][1]]
    return {"seeds": seeds, "success_rate": wins / episodes, "wilson_low": low, "wilson_high": high}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("evals", nargs="+", help="LABEL=PATH to a sefm eval JSON")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--title", default="greedy success, Wilson 95% intervals")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, rows = [], []
    for item in args.evals:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected LABEL=PATH")
        summary = pooled([json.loads(Path(part).read_text()) for part in path.split("+")], item)
        seeds = f"seeds {summary['seeds'][0]:,}-{summary['seeds'][1]:,}"
        rows.append((label, seeds, summary["success_rate"], summary["wilson_low"], summary["wilson_high"]))
        if label not in labels:
            labels.append(label)
    ranges = sorted({r[1] for r in rows})
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(labels), 3.6))
    for k, seeds in enumerate(ranges):
        shift = (k - (len(ranges) - 1) / 2) * 0.15
        picked = [r for r in rows if r[1] == seeds]
        x = [labels.index(r[0]) + shift for r in picked]
        rate = [r[2] for r in picked]
        err = [[r[2] - r[3] for r in picked], [r[4] - r[2] for r in picked]]
        ax.errorbar(x, rate, yerr=err, fmt="o", capsize=4, label=seeds)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("success")
    ax.set_title(args.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps([dict(zip(("label", "seeds", "success_rate", "low", "high"), r, strict=True)) for r in rows]))


if __name__ == "__main__":
    main()
