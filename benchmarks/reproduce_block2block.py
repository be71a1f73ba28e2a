"""Stage 0 + Stage 1 of the shipped 8-block pair from nothing, timed: #14's 3-hour budget.

Runs, in order, the commands in the READMEs of checkpoints/base_pointer,
checkpoints/stage1_b2b8_from_base, checkpoints/stage1_b2b8_reward_from_base and
checkpoints/stage1_b2b8_snap, every path under ``--out``: the 10% set and its held copy, Stage 0 to
the shipped step (1,050 of 1,500), the place -> action map, the word-ordered pointer fit, the
from-base recipe, the reward model, and the centre finder both snap to. Each phase's
wall time goes to OUT/timings.json as it ends; a rerun skips finished phases and resumes the one a
kill stopped (every command resumes or skips what it kept). Prints one JSON object: seconds per
phase and in all, and the two checkpoints made (OUT/stage1_snap/best_bc, OUT/stage1_snap/best_steps).

  python benchmarks/reproduce_block2block.py --out runs/reproduce_b2b8          # hours
  python benchmarks/reproduce_block2block.py --out runs/reproduce_b2b8 --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from efm_bench import cpu_name

SEFM = str(Path(sys.executable).with_name("sefm"))


# Each phase's sefm command, in the order they depend on each other; {o} is --out.
PHASES = {
    "demonstrations": "datagen --task block2block --episodes 2000 --seed 0 --workers 2 --out {o}/b2b8_10pct",
    "held_demonstrations": "datagen --task block2block --episodes 2000 --seed 0 --workers 2 --hold-steps 6 "
    "--out {o}/b2b8_hold",
    "stage0": "pretrain --config config/pretrain_pointer.yaml --stop-at 1050 --out {o}/base",
    "plan": "train sft --config config/stage1_b2b8_plan_from_base_cpu.yaml --init {o}/base/last "
    "--data {o}/b2b8_10pct --out {o}/sft_plan",
    "pointer": "train pointer --init {o}/sft_plan/best_plan --word-order --out {o}/plan_ordered",
    "policy": "train sft --config config/stage1_b2b8_from_base_ordered_cpu.yaml --init {o}/plan_ordered "
    "--data {o}/b2b8_10pct --out {o}/sft_policy",
    "policy_reads": "model reconfigure {o}/sft_policy/best_bc --place-reads half_patch --out {o}/stage1/best_bc",
    "reward_model": "train sft --config config/stage1_b2b8_reward_from_base_cpu.yaml --init {o}/stage1/best_bc "
    "--data {o}/b2b8_hold --out {o}/sft_reward",
    "reward_reads": "model reconfigure {o}/sft_reward/last --place-reads half_patch --place-frames 8 "
    "--out {o}/stage1/best_steps",
    "centres": "train centres --init {o}/stage1/best_steps --demonstrations {o}/b2b8_10pct "
    "--out {o}/stage1_snap/best_steps",
    "policy_centres": "train centres --init {o}/stage1/best_bc --finder-from {o}/stage1_snap/best_steps "
    "--out {o}/stage1_snap/best_bc",
}


def phases(out: Path) -> list[tuple[str, list[str]]]:
    """(name, argv after ``sefm``) of each phase."""
    return [(name, shlex.split(command.format(o=shlex.quote(str(out))))) for name, command in PHASES.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for every product; rerun with it to resume")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of every phase")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args()
    out = Path(args.out)
    if args.dry_run:
        for name, command in phases(out):
            print(f"# {name}\n{shlex.join([SEFM, *command])}")
        return
    out.mkdir(parents=True, exist_ok=True)
    record = out / "timings.json"
    timings = json.loads(record.read_text()) if record.exists() else {}
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    for name, command in phases(out):
        if timings.get(name, {}).get("done"):
            continue
        start = time.monotonic()
        code = subprocess.run([SEFM, *command], env=env, check=False).returncode
        entry = timings.setdefault(name, {"seconds": 0.0, "done": False})
        entry["seconds"] += time.monotonic() - start  # a resumed phase adds its attempts up
        entry["done"] = code == 0
        record.write_text(json.dumps(timings, indent=2) + "\n")
        if code:
            sys.exit(f"{name} failed (exit {code}): {shlex.join(command)}; rerun to resume")
    seconds = {name: round(t["seconds"], 1) for name, t in timings.items()}
    print(json.dumps({
        "cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads, "seconds": seconds,
        "total_hours": round(sum(seconds.values()) / 3600, 2),
        "policy": str(out / "stage1_snap" / "best_bc"), "reward_model": str(out / "stage1_snap" / "best_steps"),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
