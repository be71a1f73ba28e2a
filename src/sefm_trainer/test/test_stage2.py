import json

import numpy as np
import pytest
import torch

from sefm_interfaces.typed_config import ConfigError
from sefm_policy.checkpoint import load_checkpoint, read_manifest, save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer import stage2
from sefm_trainer.cotrain import Demonstrations
from sefm_trainer.rollout import PracticeEpisode
from sefm_trainer.stage2 import GymSource, Stage2Config, buffer_steps, self_improve, update


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    return save_checkpoint(EFM.build(EFMConfig(seed=1)), root / "policy"), save_checkpoint(
        EFM.build(EFMConfig(seed=2)), root / "reward"
    )


def small(checkpoints, out, **kw):
    values = dict(policy=str(checkpoints[0]), reward_model=str(checkpoints[1]), out=str(out), loops=2, updates=2,
                  minibatch=4, envs=2, max_steps=5, success_threshold=0.0)  # fmt: skip
    values.update(kw)
    return Stage2Config(**values)


def fake_episode(length, seed=0):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(length + 1)]
    return PracticeEpisode(
        seed=seed,
        instruction="push the red moon to the blue cube",
        frames=frames,
        tokens=[rng.integers(0, 2, 4) for _ in range(length)],
        distances=list(np.linspace(20, 10, length + 1)),
    )


def test_buffer_holds_exactly_n_times_b_distinct_steps(checkpoints, tmp_path):
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4)
    episodes = [fake_episode(5, seed=s) for s in range(3)]  # 15 steps for a 12-step buffer
    steps = buffer_steps(episodes, cfg, np.random.default_rng(0))
    assert len(steps) == 12 and len({(id(s.episode), s.t) for s in steps}) == 12
    assert all(s.ret == pytest.approx(sum(0.9**i * 2.0 for i in range(5 - s.t))) for s in steps)  # r = 2 per step
    with pytest.raises(ValueError, match="N×B = 12"):
        buffer_steps(episodes[:2], cfg, np.random.default_rng(0))


def test_a_success_reward_weighs_every_step_of_a_detected_success_and_nothing_else(checkpoints, tmp_path):
    episodes = [fake_episode(4, seed=s) for s in range(3)]
    episodes[1].detected_success = True
    steps = buffer_steps(episodes, small(checkpoints, tmp_path, updates=3, minibatch=4, reward="success"),
                         np.random.default_rng(0))  # fmt: skip
    assert sorted((s.episode.seed, s.ret) for s in steps) == [(0, 0.0)] * 4 + [(1, 1.0)] * 4 + [(2, 0.0)] * 4


def test_a_greedy_baseline_weighs_practice_by_how_it_beats_or_loses_to_the_greedy_run(checkpoints, tmp_path):
    practice = [fake_episode(4, seed=s) for s in range(3)]
    greedy = [fake_episode(4, seed=s) for s in range(3)]
    for ep, (practised, greedy_run) in zip(practice, [(True, False), (False, True), (True, True)], strict=True):
        ep.detected_success = practised
        greedy[ep.seed].detected_success, greedy[ep.seed].baseline = greedy_run, True
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4, reward="success", baseline="greedy")
    steps = buffer_steps(practice + greedy, cfg, np.random.default_rng(0))
    assert all(not s.episode.baseline for s in steps)
    assert sorted((s.episode.seed, s.ret) for s in steps) == [(0, 1.0)] * 4 + [(1, -1.0)] * 4 + [(2, 0.0)] * 4
    with pytest.raises(ValueError, match="seed 2 was practised without a greedy run"):
        buffer_steps(practice + greedy[:2], cfg, np.random.default_rng(0))
    with pytest.raises(ValueError, match="set reward: success"):
        small(checkpoints, tmp_path, baseline="greedy")


def test_normalized_returns_keep_the_order_of_the_steps_around_zero(checkpoints, tmp_path):
    episodes = [fake_episode(5, seed=s) for s in range(3)]
    raw = buffer_steps(episodes, small(checkpoints, tmp_path, updates=3, minibatch=4), np.random.default_rng(0))
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4, normalize_returns=True)
    normed = buffer_steps(episodes, cfg, np.random.default_rng(0))
    assert [(id(s.episode), s.t) for s in normed] == [(id(s.episode), s.t) for s in raw]
    returns = np.array([s.ret for s in normed])
    assert returns.mean() == pytest.approx(0.0, abs=1e-9) and returns.std() == pytest.approx(1.0)
    assert np.array_equal(np.argsort([s.ret for s in raw], kind="stable"), np.argsort(returns, kind="stable"))


@pytest.mark.parametrize("chain_temperature", [0.0, 1.0])
def test_each_buffered_step_trains_exactly_once(checkpoints, tmp_path, monkeypatch, chain_temperature):
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4, chain_temperature=chain_temperature)
    steps = buffer_steps([fake_episode(6, seed=s) for s in range(2)], cfg, np.random.default_rng(1))
    seen, weighs_chain = [], set()
    real = stage2.reinforce_loss

    def recording(model, obs, tokens, returns, **kw):
        seen.extend(returns)
        weighs_chain.add(kw["chain"])
        return real(model, obs, tokens, returns, **kw)

    monkeypatch.setattr(stage2, "reinforce_loss", recording)
    policy = load_checkpoint(checkpoints[0])
    update(policy, torch.optim.SGD(policy.parameters(), lr=0.0), steps, cfg)
    assert sorted(seen) == sorted(s.ret for s in steps)
    assert weighs_chain == {chain_temperature > 0}  # sampled places are reinforced with the action


def test_clipped_updates_measure_each_step_against_the_policy_before_the_loop(checkpoints, tmp_path):
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4, clip=0.2)
    steps = buffer_steps([fake_episode(6, seed=s) for s in range(2)], cfg, np.random.default_rng(1))
    policy = load_checkpoint(checkpoints[0])
    still = update(policy, torch.optim.SGD(policy.parameters(), lr=0.0), steps, cfg)
    assert all(u["rl/approx_kl"] == pytest.approx(0.0, abs=1e-6) and u["rl/clip_frac"] == 0 for u in still)
    moving = update(policy, torch.optim.SGD(policy.parameters(), lr=3.0), steps, cfg)
    assert moving[0]["rl/approx_kl"] == pytest.approx(0.0, abs=1e-6)  # nothing has moved before the first
    assert moving[-1]["rl/approx_kl"] > 1e-3  # the last minibatch was practised by the policy two updates ago


def test_loops_keep_the_reward_model_and_vision_tower_frozen(checkpoints, tmp_path):
    seen = {}

    class Recording(GymSource):
        def collect(self, policy, detector, min_steps, loop):
            seen["detector"] = detector
            return super().collect(policy, detector, min_steps, loop)

    cfg = small(checkpoints, tmp_path / "run")
    result = self_improve(cfg, source=Recording(cfg), progress=False)
    assert [h["loop"] for h in result["history"]] == [1, 2]
    assert all(h["episodes"] >= 1 and h["extra_episodes"] > 0 for h in result["history"])
    frozen = load_checkpoint(checkpoints[1]).backbone.state_dict()
    after = seen["detector"].model.backbone.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    start, end = load_checkpoint(checkpoints[0]).backbone, load_checkpoint(tmp_path / "run" / "last").backbone
    vision = {k for k in start.state_dict() if "vision_tower" in k}
    assert all(torch.equal(start.state_dict()[k], end.state_dict()[k]) for k in vision)
    assert any(
        not torch.equal(start.state_dict()[k], end.state_dict()[k]) for k in start.state_dict() if k not in vision
    )
    assert (tmp_path / "run" / "best").is_dir() and (tmp_path / "run" / "stage2.jsonl").read_text().count("\n") == 2


def test_a_kl_anchor_holds_practice_to_the_frozen_stage1_policy(checkpoints, tmp_path, monkeypatch):
    kl = []
    real = stage2.reinforce_loss

    def recording(*args, **kw):
        out = real(*args, **kw)
        kl.append((kw["reference"], out.metrics["rl/kl"]))
        return out

    monkeypatch.setattr(stage2, "reinforce_loss", recording)
    self_improve(small(checkpoints, tmp_path / "run", kl_coef=1.0, lr=1e-2), progress=False)
    reference = kl[0][0]
    start = load_checkpoint(checkpoints[0]).backbone.state_dict()
    assert all(torch.equal(start[k], v) for k, v in reference.backbone.state_dict().items())  # never trained
    assert kl[0][1] == pytest.approx(0.0, abs=1e-5) and kl[-1][1] > 1e-4  # zero at the start, then it measures
    records = [json.loads(line) for line in (tmp_path / "run" / "stage2.jsonl").read_text().splitlines()]
    per_loop = [np.mean([k for _, k in kl[:2]]), np.mean([k for _, k in kl[2:]])]  # 2 updates a loop
    assert [r["rl_kl"] for r in records] == pytest.approx(per_loop)


def test_co_training_pulls_the_policy_toward_the_demonstrations(checkpoints, tmp_path, demo_episodes):
    cfg = small(checkpoints, tmp_path, updates=3, minibatch=4, demonstrations=str(demo_episodes), demo_coef=1.0)
    flat = [fake_episode(6, seed=s) for s in range(2)]
    for ep in flat:
        ep.distances = [10.0] * (ep.length + 1)  # no progress: REINFORCE alone moves nothing
    steps = buffer_steps(flat, cfg, np.random.default_rng(0))
    demos = Demonstrations(demo_episodes, "language_table")

    def demo_loss(policy):
        with torch.no_grad():
            return demos.loss(policy, 32, np.random.default_rng(9)).loss.item()

    moved = {}
    for coef in (0.0, 1.0):
        policy = load_checkpoint(checkpoints[0]).train()
        before = demo_loss(policy)
        update(policy, torch.optim.SGD(policy.parameters(), lr=0.05), steps, cfg.model_copy(update={"demo_coef": coef}),
               demonstrations=demos, rng=np.random.default_rng(1))  # fmt: skip
        moved[coef] = demo_loss(policy) - before
    assert moved[0.0] == 0.0 and moved[1.0] < -0.1, moved


def test_a_run_co_trains_in_every_update_and_checks_its_demonstrations(
    checkpoints, tmp_path, demo_episodes, monkeypatch
):
    calls = []
    real = Demonstrations.loss
    monkeypatch.setattr(Demonstrations, "loss", lambda self, *a: calls.append(a[1]) or real(self, *a))
    self_improve(small(checkpoints, tmp_path / "run", demonstrations=str(demo_episodes), demo_coef=0.5, demo_batch=3),
                 progress=False)  # fmt: skip
    assert calls == [3] * 4  # 2 loops x 2 updates
    records = [json.loads(line) for line in (tmp_path / "run" / "stage2.jsonl").read_text().splitlines()]
    assert all(r["demo_loss"] > 0 for r in records)
    with pytest.raises(ValueError, match="demonstrations is not set"):
        small(checkpoints, tmp_path, demo_coef=0.5)
    with pytest.raises(ConfigError, match="the policy is 'aloha'"):
        Demonstrations(demo_episodes, "aloha")


def test_gym_source_is_deterministic_from_its_seed(checkpoints, tmp_path):
    from sefm_reward.detector import StepsToGoDetector

    cfg = small(checkpoints, tmp_path)
    policy = load_checkpoint(checkpoints[0])
    detector = StepsToGoDetector(load_checkpoint(checkpoints[1]), 0.0)
    a = GymSource(cfg).collect(policy, detector, 6, loop=1)
    b = GymSource(cfg).collect(policy, detector, 6, loop=1)
    assert [ep.seed for ep in a] == [ep.seed for ep in b]
    assert all(np.array_equal(np.stack(x.tokens), np.stack(y.tokens)) for x, y in zip(a, b, strict=True))


def test_greedy_leads_and_greedy_baselines_act_as_evaluation_would_and_are_never_weighed(checkpoints, tmp_path):
    from sefm_reward.detector import StepsToGoDetector
    from sefm_trainer.rollout import run_episodes

    cfg = small(checkpoints, tmp_path, greedy_steps=4, max_steps=6)
    policy = load_checkpoint(checkpoints[0])
    detector = StepsToGoDetector(load_checkpoint(checkpoints[1]), 0.0)
    practised = GymSource(cfg).collect(policy, detector, 8, loop=1)
    seeds = [ep.seed for ep in practised]
    greedy = run_episodes(policy, detector, seeds, max_steps=6, greedy=True, envs=2)
    leads = [ep.greedy_steps for ep in practised]
    assert all(0 <= n <= 4 for n in leads) and len(set(leads)) > 1
    for ep, reference in zip(practised, greedy, strict=True):
        n = ep.greedy_steps
        assert np.array_equal(np.stack(ep.tokens[:n]), np.stack(reference.tokens[:n])) if n else True
    assert sum(len(ep.practised) for ep in practised) >= 8
    baselined = GymSource(cfg.model_copy(update={"reward": "success", "baseline": "greedy"})).collect(
        policy, detector, 8, loop=1
    )
    runs = [ep for ep in baselined if ep.baseline]
    assert [ep.seed for ep in runs] == [ep.seed for ep in baselined if not ep.baseline] and not any(
        ep.practised for ep in runs
    )
    reference = run_episodes(policy, detector, [ep.seed for ep in runs], max_steps=6, greedy=True, envs=2)
    assert all(np.array_equal(np.stack(a.tokens), np.stack(b.tokens)) for a, b in zip(runs, reference, strict=True))
    steps = buffer_steps(practised, cfg.model_copy(update={"updates": 2, "minibatch": 4}), np.random.default_rng(0))
    assert all(s.t >= s.episode.greedy_steps for s in steps)
    with pytest.raises(ValueError, match="greedy_steps"):
        small(checkpoints, tmp_path, greedy_steps=-1)


def weights(path):
    return load_checkpoint(path).backbone.state_dict()


def test_a_run_stopped_after_a_loop_resumes_onto_the_uninterrupted_path(checkpoints, tmp_path):
    whole = self_improve(small(checkpoints, tmp_path / "whole", loops=3, patience=0), progress=False)
    self_improve(small(checkpoints, tmp_path / "cut", loops=1, patience=0), progress=False)
    # A record written after the last resume point (killed before it saved) is dropped, not kept twice.
    with (tmp_path / "cut" / "stage2.jsonl").open("a") as f:
        f.write('{"loop": 2, "detected_success": 1.0}\n')
    resumed = self_improve(small(checkpoints, tmp_path / "cut", loops=3, patience=0), progress=False)
    assert [h["loop"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"] == whole["history"]
    a, b = weights(tmp_path / "whole" / "last"), weights(tmp_path / "cut" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "cut" / "stage2.jsonl").read_text().count("\n") == 3
    assert len(list((tmp_path / "cut").glob("trainer_state_*.safetensors"))) == 1


def test_sigkilled_stage2_resumes_from_its_last_completed_loop(checkpoints, tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "sefm.cli", "train", "stage2", "--policy", str(checkpoints[0]),
            "--reward-model", str(checkpoints[1]), "--out", str(out), "--loops", "4"]  # fmt: skip
    config = tmp_path / "stage2.yaml"
    config.write_text("updates: 2\nminibatch: 4\nenvs: 2\nmax_steps: 5\nsuccess_threshold: 0.0\npatience: 0\n")
    proc = subprocess.Popen([*argv, "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (out / "last" / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = read_manifest(out / "last")["metadata"]["loop"]
    rerun = subprocess.run([*argv, "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    if done < 4:
        assert f"resuming {out} after loop {done}" in rerun.stdout
    loops = [json.loads(line)["loop"] for line in (out / "stage2.jsonl").read_text().splitlines()]
    assert loops == [1, 2, 3, 4]
