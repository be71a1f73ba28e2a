"""Time `sefm episodes import` on a rig-shaped recording: a LanguageTable rig's 30 Hz 640x480
jpeg camera, 50 Hz MoveIt Servo twists and the tool pose, episodes of 20 s marked by a Bool
topic with 5 s between them (sefm_trainer.rig_recording).

Prints one JSON object. Usage: python benchmarks/rig_import.py [--minutes 10] [--storage mcap]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from sefm_interfaces.typed_config import parse_config
from sefm_trainer.rig_import import RigMap, import_bags
from sefm_trainer.rig_recording import Teleop, write_language_table_rig

MAP = Path(__file__).resolve().parents[1] / "config" / "rig_maps" / "language_table.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    args = parser.parse_args()
    seconds = args.minutes * 60
    episodes = tuple((a, a + 20.0) for a in range(1, int(seconds) - 20, 25))
    tmp = Path(tempfile.mkdtemp(prefix="sefm_rig_import_"))
    try:
        started = time.monotonic()
        bag = write_language_table_rig(tmp / "session", Teleop(episodes=episodes, size=(640, 480)), args.storage)
        written_s = time.monotonic() - started
        size_mb = sum(f.stat().st_size for f in bag.iterdir()) / 1e6
        rig = parse_config(yaml.safe_load(MAP.read_text()), RigMap, str(MAP))
        summary = import_bags([bag], rig, tmp / "episodes")
        print(json.dumps({
            "recording_minutes": args.minutes,
            "storage": args.storage,
            "recording_mb": round(size_mb, 1),
            "write_recording_s": round(written_s, 1),
            "import_s": summary["wall_s"],
            "episodes": summary["episodes"],
            "steps": summary["steps"],
            "imported_seconds": summary["seconds"],
            "dropped_steps": summary["dropped_steps"],
            "problems": summary["problems"],
        }, indent=2))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
