"""Act latency at batch 1 of the 8-block chain with and without its pointer (session 19).

One thread, greedy, one read, median of 10 after one warm-up call. Prints JSON.
Usage: python docs/results/20261206/act_latency.py
"""

import json
import statistics
import time

import torch

from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.testing import table_observations

CHECKPOINTS = {
    "pointer_best_bc": "checkpoints/stage1_b2b8_pointer/best_bc",
    "chain_start": "checkpoints/stage1_b2b8_chain/last",
}

torch.set_num_threads(1)
out = {}
for name, path in CHECKPOINTS.items():
    model = load_checkpoint(path)
    obs = table_observations(1)
    model.sample_actions(obs, greedy=True)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        model.sample_actions(obs, greedy=True)
        times.append(time.perf_counter() - start)
    out[f"act_batch1_ms_{name}"] = round(1000 * statistics.median(times), 1)
print(json.dumps({"threads": 1, "machine": "2-core Intel Xeon", **out}))
