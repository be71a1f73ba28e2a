"""Which failures the shipped detector fires in (session 32's 21 first firings at s = 3, places pooled
over eight frames), by failure_anatomy.py's class: how many of each class it fires in, and how
near another block stands to the target in the ones it fires in.
Usage: python firings_by_class.py ANATOMY_JSON FIRINGS_JSON > out.json
"""

import json
import sys
from collections import Counter
from pathlib import Path

rows = {r["seed"]: r for r in json.loads(Path(sys.argv[1]).read_text())["rows"]}
fired = [rows[f["seed"]] for f in json.loads(Path(sys.argv[2]).read_text())["rows"]]
print(json.dumps({
    "firings": len(fired),
    "fired_by_class": dict(Counter(r["class"] for r in fired)),
    "failures_by_class": dict(Counter(r["class"] for r in rows.values())),
    "another_block_to_target_m_where_fired": {
        k: sorted(r["nearest_other_block_to_target_m"] for r in fired if r["class"] == k)
        for k in dict.fromkeys(r["class"] for r in fired)
    },
}, indent=1))  # fmt: skip
