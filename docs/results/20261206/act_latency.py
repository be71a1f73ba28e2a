import json, time, statistics, torch
from sefm_policy.checkpoint import load_checkpoint
from sefm_policy.testing import table_observations
torch.set_num_threads(1)
out = {}
for name, path in (("pointer_best_bc", "checkpoints/stage1_b2b8_pointer/best_bc"), ("chain_start", "checkpoints/stage1_b2b8_chain/last")):
    m = load_checkpoint(path)
    obs = table_observations(1, size=m.image_size) if "size" in table_observations.__code__.co_varnames else table_observations(1)
    m.sample_actions(obs, greedy=True)
    ts = []
    for _ in range(10):
        t = time.perf_counter(); m.sample_actions(obs, greedy=True); ts.append(time.perf_counter() - t)
    out[f"act_batch1_ms_{name}"] = round(1000 * statistics.median(ts), 1)
print(json.dumps({"threads": 1, "machine": "2-core Intel Xeon", **out}))
