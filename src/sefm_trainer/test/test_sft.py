import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sefm_policy.checkpoint import load_checkpoint, read_manifest
from sefm_policy.testing import table_observations
from sefm_sim_bridge.scene import image_point
from sefm_trainer.grounding import GroundingData
from sefm_trainer.schedule import warmup_cosine
from sefm_trainer.sft import Data, SFTConfig, objective_split, shard, train_sft


def config(data, out, **kw):
    values = dict(data=str(data), out=str(out), steps=6, batch_size=12, val_every=3, checkpoint_every=2, val_samples=16)
    values.update(kw)
    return SFTConfig(**values)


def weights(path):
    return load_checkpoint(path).backbone.state_dict()


def test_batches_split_uniformly_and_shard_evenly():
    assert objective_split(32, ["bc", "steps", "instruction"]) == {"bc": 11, "steps": 11, "instruction": 10}
    assert [shard(11, r, 2) for r in (0, 1)] == [slice(0, 6), slice(6, 11)]
    assert objective_split(32, ["bc", "plan", "steps"], {"plan": 128}) == {"bc": 16, "plan": 128, "steps": 16}


def test_a_device_that_is_not_cpu_or_cuda_is_refused_naming_the_key(tmp_path):
    from sefm_interfaces.typed_config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="device"):
        parse_config({"data": "d", "out": "o", "device": "gpu"}, SFTConfig)
    assert parse_config({"data": "d", "out": "o", "device": "cuda:1"}, SFTConfig).device == "cuda:1"


def test_a_fresh_decoder_on_a_checkpoints_tower_takes_its_background_and_refuses_a_whole_init_too(
    demo_episodes, tmp_path
):
    from sefm_interfaces.typed_config import ConfigError, parse_config
    from sefm_policy.checkpoint import save_checkpoint
    from sefm_policy.config import EFMConfig, TextConfig
    from sefm_policy.model import EFM

    seeing = EFM.build(EFMConfig())
    seeing.background.fill_(3.0)
    save_checkpoint(seeing, tmp_path / "seeing")
    with pytest.raises(ConfigError, match="init_vision"):
        parse_config({"data": "d", "out": "o", "init": "a", "init_vision": "b"}, SFTConfig)
    wide = EFMConfig(text=TextConfig(hidden_size=96, num_layers=3))
    train_sft(config(demo_episodes, tmp_path / "run", steps=1, init_vision=str(tmp_path / "seeing"), model=wide))
    trained = load_checkpoint(tmp_path / "run" / "last")
    assert trained.config.text.num_layers == 3 and trained.background.eq(3.0).all()


def test_deepen_inserts_layers_into_the_init_and_is_refused_without_one(demo_episodes, tmp_path):
    from sefm_interfaces.typed_config import ConfigError, parse_config
    from sefm_policy.checkpoint import save_checkpoint
    from sefm_policy.config import EFMConfig
    from sefm_policy.model import EFM

    with pytest.raises(ConfigError, match="deepen"):
        parse_config({"data": "d", "out": "o", "deepen": 2}, SFTConfig)
    save_checkpoint(EFM.build(EFMConfig()), tmp_path / "small")
    train_sft(config(demo_episodes, tmp_path / "run", steps=1, init=str(tmp_path / "small"), deepen=2))
    assert load_checkpoint(tmp_path / "run" / "last").config.text.num_layers == EFMConfig().text.num_layers + 2


def test_freeze_vision_polishes_an_init_without_moving_its_tower(demo_episodes, tmp_path):
    from sefm_policy.checkpoint import save_checkpoint
    from sefm_policy.config import EFMConfig
    from sefm_policy.model import EFM

    save_checkpoint(EFM.build(EFMConfig()), tmp_path / "start")
    train_sft(config(demo_episodes, tmp_path / "run", steps=2, init=str(tmp_path / "start"), freeze_vision=True))
    before, after = weights(tmp_path / "start"), weights(tmp_path / "run" / "last")
    tower = [k for k in before if "vision_tower" in k]
    assert tower and all(torch.equal(before[k], after[k]) for k in tower)
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in tower)


def test_stage1_keeps_best_checkpoints_per_objective_and_logs(demo_episodes, tmp_path):
    best = train_sft(config(demo_episodes, tmp_path / "run"))
    for objective in ("bc", "steps", "instruction"):
        meta = read_manifest(tmp_path / "run" / f"best_{objective}")["metadata"]
        assert meta["step"] == best[objective]["step"] and meta["val_loss"] == pytest.approx(best[objective]["loss"])
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "val" not in x] == list(range(1, 7))
    # How much BC loss rises when each validation step sees another step's frames.
    assert all(np.isfinite(x["val"]["bc/image_gain"]) for x in lines if "val" in x)
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    # The policy subtracts the mean of its training frames, the board without what moves on it.
    sample = Data(config(demo_episodes, tmp_path / "run")).background_sample(seed=0)
    frames = np.stack([o.images for o in sample]).astype(np.float64).mean(0)  # (2 images, S, S, 3)
    background = load_checkpoint(tmp_path / "run" / "best_bc").background.permute(0, 2, 3, 1).numpy()
    assert np.abs(background - frames).max() < 1e-3


def test_grounding_questions_co_train_with_the_actions_and_are_validated_on_their_own_scenes(demo_episodes, tmp_path):
    cfg = config(demo_episodes, tmp_path / "run", objectives=["bc", "grounding"], steps=3, val_every=3, val_samples=8)
    best = train_sft(cfg)
    assert best["grounding"]["step"] == 3
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["answer/loss"]) for x in lines if "val" not in x)
    assert np.isfinite(lines[-1]["val"]["answer/loss"]) and "bc/loss" in lines[-1]["val"]
    data = Data(cfg)
    data.grounding = GroundingData(64)
    picks = np.arange(4)
    train_prompts = data.batch("grounding", data.train, picks)[1][0]
    assert data.batch("grounding", data.train, picks)[1][0] == train_prompts  # reproducible from the picks
    val_obs = data.batch("grounding", data.val, picks)[0]
    train_obs = data.batch("grounding", data.train, picks)[0]
    assert any(not np.array_equal(a.images[0], b.images[0]) for a, b in zip(val_obs, train_obs, strict=True))


def test_a_reasoning_policy_learns_to_say_where_things_are_before_it_acts(demo_episodes, tmp_path):
    cfg = config(demo_episodes, tmp_path / "run", objectives=["bc"], reason=True, steps=2, val_every=2)
    train_sft(cfg.model_copy(update={"place_radices": [6, 4]}))  # places by patch, then 4 px within it
    policy = load_checkpoint(tmp_path / "run" / "best_bc")
    assert policy.config.reason and policy.config.place_radices == [6, 4]
    assert policy.embodiment.action.slot_sizes == (6, 6, 4, 4) * 3 + (2, 11, 2, 11)
    data = Data(config(demo_episodes, tmp_path / "run"))
    step = data.train[0]
    sample = policy.sample_actions([step.observation], temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert sample.tokens.shape == (1, 16) and sample.actions.shape == (1, 2)
    assert np.abs(sample.actions).max() <= 0.1
    # Its targets: the places of the named block, the target block and the effector, then the action.
    data.tokenizer = policy.embodiment.action
    _, tokens = data.batch("bc", data.train, np.array([0]))
    episode = data.train.episodes[0]
    place = policy.embodiment.action.decode_places(tokens)[0]
    obj = episode.objects[episode.meta.extra["obj"]][0]
    assert np.abs(place[0] - image_point(obj)).max() <= 0.5 / policy.embodiment.action.place.cells  # within its cell


def trained_chain(demo_episodes, out, **kw):
    """Two steps of bc + chain: the metrics lines, the best chain checkpoint and its training data."""
    cfg = config(demo_episodes, out, objectives=["bc", "chain"], reason=True, steps=2, val_every=2, **kw)
    train_sft(cfg)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["chain/loss"]) for x in lines if "val" not in x)
    policy = load_checkpoint(out / "best_chain")
    data = Data(cfg)
    data.tokenizer = policy.embodiment.action
    return lines, policy, data


def test_the_chain_objective_asks_for_random_blocks_of_the_frame_and_trains_their_places(demo_episodes, tmp_path):
    lines, policy, data = trained_chain(demo_episodes, tmp_path / "run")
    assert 0.0 <= lines[-1]["val"]["chain/object_exact"] <= 1.0
    picks = np.arange(16)
    observations, tokens = data.batch("chain", data.train, picks)
    again, same = data.batch("chain", data.train, picks)
    assert [o.instruction for o in again] == [o.instruction for o in observations] and (same == tokens).all()
    named = set()
    for i, (obs, places) in enumerate(zip(observations, policy.embodiment.action.decode_places(tokens), strict=True)):
        step = data.train[int(picks[i])]
        episode = data.train.episodes[step.episode]
        obj = next(n for n in episode.objects if obs.instruction.split(" the ")[1].startswith(n))
        named.add(obj)
        assert (
            np.abs(places[0] - image_point(episode.objects[obj][step.t])).max()
            <= 0.5 / policy.embodiment.action.place.cells
        )
    assert len(named) > 2  # not only the blocks the demonstrations were about
    with pytest.raises(ValueError, match="objectives: chain"):
        train_sft(config(demo_episodes, tmp_path / "plain", objectives=["chain"]))


def test_the_scenes_objective_asks_the_chain_about_fresh_boards_kept_apart_from_validation(demo_episodes, tmp_path):
    from sefm_interfaces.typed_config import ConfigError, parse_config
    from sefm_trainer.scene_chain import SceneChains

    cfg = config(demo_episodes, tmp_path / "run", objectives=["bc", "scenes"], reason=True, steps=2, val_every=2)
    assert train_sft(cfg.model_copy(update={"val_samples": 8}))["scenes"]["step"] == 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["scenes/loss"]) and "chain/loss" not in x for x in lines if "val" not in x)
    assert 0.0 <= lines[-1]["val"]["scenes/target_exact"] <= 1.0
    tokenizer = load_checkpoint(tmp_path / "run" / "best_scenes").embodiment.action
    chains = SceneChains(64, per_scene=2)
    picks = np.array([5, 9, 12, 40, 41, 77])
    observations, tokens = chains.batch(tokenizer, 0, picks)
    again, same = chains.batch(tokenizer, 0, picks)
    assert [o.instruction for o in again] == [o.instruction for o in observations] and (same == tokens).all()
    held_out, _ = chains.batch(tokenizer, 1, picks)
    assert not any(np.array_equal(a.images[0], b.images[0]) for a, b in zip(held_out, observations, strict=True))
    cell = 0.5 / tokenizer.place.cells
    for i, places in enumerate(tokenizer.decode_places(tokens)):
        scene, _, _ = chains.scenes.sample("blocks4", 2 * int(picks[i - i % 2]))
        obj = next(n for n in scene.objects if observations[i].instruction.split(" the ")[1].startswith(n))
        assert np.abs(places[0] - image_point(scene.objects[obj])).max() <= cell
        assert np.abs(places[2] - image_point(scene.effector)).max() <= cell
        assert np.array_equal(observations[i].images[0], scene.image)
    assert len({o.instruction for o in observations}) > 2
    with pytest.raises(ValueError, match="objectives: scenes"):
        train_sft(config(demo_episodes, tmp_path / "plain", objectives=["scenes"]))
    with pytest.raises(ConfigError, match="scene_kind"):
        parse_config({"data": "d", "out": "o", "scene_kind": "blocks9"}, SFTConfig)


def test_effector_near_puts_the_effector_beside_the_block_its_questions_name():
    from sefm_interfaces.typed_config import ConfigError, parse_config
    from sefm_sim_bridge.scene import board_point
    from sefm_trainer.scene_chain import NEAR_M, SceneChains

    picks = np.arange(0, 24, 2)
    plain = SceneChains(64, "blocks8", per_scene=2)
    near = SceneChains(64, "blocks8", per_scene=2, effector_near=1.0)
    _, plain_places, _ = plain.boards(0, picks)
    observations, places, truth = near.boards(0, picks)
    named = [" ".join(o.instruction.split(" the ")[1].split()[:2]) for o in observations]
    gaps = []
    for i, (objects, effector) in enumerate(truth):
        obj = named[i]
        gaps.append(np.linalg.norm(np.asarray(effector) - objects[obj]))
        assert np.allclose(board_point(*places[i][2]), effector, atol=1e-6)  # the chain says where it now is
        if i % 2:
            assert named[i] == named[i - 1]  # one board, one block beside the effector
    assert NEAR_M[0] - 1e-6 <= min(gaps) and max(gaps) <= NEAR_M[1] + 1e-6
    plain_gaps = np.linalg.norm(plain_places[:, 0] - plain_places[:, 2], axis=-1)
    assert np.median(plain_gaps) > np.median(np.linalg.norm(places[:, 0] - places[:, 2], axis=-1))
    again, _, _ = near.boards(0, picks)
    assert [o.instruction for o in again] == [o.instruction for o in observations]
    _, _, plain_truth = plain.boards(0, picks)
    for (objects, _), (same_board, _) in zip(truth, plain_truth, strict=True):
        assert all(np.array_equal(objects[n], same_board[n]) for n in objects)  # only the effector moved
    for chains in (plain, near):
        chains.close()
    with pytest.raises(ConfigError, match="scene_effector_near"):
        parse_config({"data": "d", "out": "o", "scene_effector_near": 1.5}, SFTConfig)


def test_neighbour_teaching_feeds_coarse_digits_a_cell_off_in_training_and_never_in_validation(demo_episodes, tmp_path):
    from sefm_interfaces.typed_config import ConfigError, parse_config
    from sefm_policy.losses import chain_loss
    from sefm_policy.tokenizers import NeighbourTeaching

    _, model, data = trained_chain(demo_episodes, tmp_path / "run", neighbour_rate=0.5)
    picks = np.arange(12)
    obs, taught = data.batch("chain", data.train, picks)
    _, again = data.batch("chain", data.train, picks)
    assert isinstance(taught, NeighbourTeaching) and (again.fed == taught.fed).all()
    chain = model.embodiment.reasoning_slots
    assert (taught.fed[:, :chain] != taught.target[:, :chain]).any()
    assert isinstance(data.batch("chain", data.val, picks[:4])[1], np.ndarray)
    # The loss says the targets after the fed digits, not after the targets.
    with torch.no_grad():
        dist = model.chain_distributions(obs, taught.fed[:, :chain])
        said = torch.as_tensor(taught.target[:, :chain])
        assert chain_loss(model, obs, taught).loss.item() == pytest.approx(
            -dist.gather(-1, said[..., None]).mean().item()
        )
        assert chain_loss(model, obs, taught.target).loss.item() != pytest.approx(
            chain_loss(model, obs, taught).loss.item()
        )
    with pytest.raises(ConfigError, match="neighbour_rate"):
        parse_config({"data": "d", "out": "o", "objectives": ["bc"], "neighbour_rate": 0.3}, SFTConfig)
    with pytest.raises(ConfigError, match="neighbour_rate"):
        parse_config({"data": "d", "out": "o", "objectives": ["chain"], "neighbour_rate": 1.5}, SFTConfig)


def test_an_action_from_places_trains_on_its_own_image_free_batch_and_keeps_its_best(demo_episodes, tmp_path):
    cfg = config(demo_episodes, tmp_path / "run", objectives=["bc", "plan"], reason=True, action_from="places")
    best = train_sft(cfg.model_copy(update={"objective_batch": {"plan": 8}, "steps": 2, "val_every": 2}))
    assert load_checkpoint(tmp_path / "run" / "best_plan").config.action_from == "places"
    again = cfg.model_copy(update={"out": str(tmp_path / "again"), "init": str(tmp_path / "run" / "best_plan")})
    train_sft(again.model_copy(update={"slot_tokens": "per_slot", "steps": 1, "val_every": 1}))
    assert load_checkpoint(tmp_path / "again" / "best_bc").config.slot_tokens == "per_slot"
    assert best["plan"]["step"] == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["plan/loss"]) and np.isfinite(x["bc/loss"]) for x in lines if "val" not in x)
    assert 0.0 <= lines[-1]["val"]["plan/action_exact"] <= 1.0
    with pytest.raises(ValueError, match="objectives: plan"):
        train_sft(config(demo_episodes, tmp_path / "plain", objectives=["plan"], reason=True))
    with pytest.raises(ValueError, match="objective_batch"):
        config(demo_episodes, tmp_path / "x", objectives=["bc"], objective_batch={"plan": 8})


def test_steps_a_step_a_bin_rewrite_an_inits_steps_tokens_and_are_kept_in_the_checkpoint(demo_episodes, tmp_path):
    cfg = config(demo_episodes, tmp_path / "run", objectives=["steps"])
    train_sft(cfg.model_copy(update={"steps": 1, "val_every": 1}))
    assert load_checkpoint(tmp_path / "run" / "best_steps").embodiment.steps.bins == 50
    again = {"out": str(tmp_path / "again"), "init": str(tmp_path / "run" / "best_steps"), "steps_per_bin": 1}
    train_sft(cfg.model_copy(update={**again, "steps": 1, "val_every": 1}))
    model = load_checkpoint(tmp_path / "again" / "best_steps")
    assert model.config.steps_per_bin == 1 and model.embodiment.steps.bins == 101
    with torch.no_grad():
        d = model.expected_steps_to_go(table_observations(2, size=model.config.model_image_size))
    assert model.steps_centres[0] == 0 and torch.isfinite(d).all()


def test_steps_to_go_from_places_trains_on_the_true_places_and_is_validated_on_its_own(demo_episodes, tmp_path):
    cfg = config(demo_episodes, tmp_path / "run", objectives=["steps"], reason=True, action_from="places")
    train_sft(cfg.model_copy(update={"steps_from": "places", "steps": 2, "val_every": 2}))
    model = load_checkpoint(tmp_path / "run" / "best_steps")
    assert model.config.steps_from == "places"
    val = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]["val"]
    assert np.isfinite(val["steps/abs_err"]) and np.isfinite(val["steps/said_abs_err"])
    data = Data(cfg)
    data.tokenizer = model.embodiment.action
    _, (steps_to_go, places) = data.batch("steps", data.train, np.arange(3))
    chain = model.embodiment.reasoning_slots
    first = data.train[0]
    assert list(steps_to_go) == [first.T, first.T - 1, first.T - 2]
    _, acted = data.batch("bc", data.train, np.arange(3))
    assert np.array_equal(places[:, :chain], acted[:, :chain])
    with pytest.raises(ValueError, match="steps_from"):
        train_sft(config(demo_episodes, tmp_path / "x", objectives=["steps"], reason=True, steps_from="places"))


def test_warm_up_ramps_the_rate_and_the_cosine_ends_at_a_tenth():
    assert warmup_cosine(1e-3, 0, 100, 1000) == pytest.approx(1e-5)
    assert warmup_cosine(1e-3, 99, 100, 1000) == pytest.approx(1e-3)
    assert warmup_cosine(1e-3, 1000, 100, 1000) == pytest.approx(1e-4)
    assert warmup_cosine(1e-3, 550, 100, 1000) == pytest.approx(0.55e-3)
    assert warmup_cosine(1e-3, 900, 100, 1000, decay=False) == 1e-3


@pytest.mark.parametrize("objectives", [["bc", "steps", "instruction"], ["bc", "objects"]])
def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(demo_episodes, tmp_path, objectives):
    """With objects, the training-only head must come back from the resume state too."""
    train_sft(config(demo_episodes, tmp_path / "whole", objectives=objectives))
    killer = textwrap.dedent(
        f"""
        import os, signal, torch
        from sefm_trainer.sft import SFTConfig, train_sft
        calls = 0
        step = torch.optim.AdamW.step
        def dying_step(self, *a, **k):
            global calls
            calls += 1
            if calls == 5:  # after the checkpoint at step 4, before the one at step 6
                os.kill(os.getpid(), signal.SIGKILL)
            return step(self, *a, **k)
        torch.optim.AdamW.step = dying_step
        cfg = {config(demo_episodes, tmp_path / "killed", objectives=objectives).model_dump_json()!r}
        train_sft(SFTConfig.model_validate_json(cfg))
        """
    )
    proc = subprocess.run([sys.executable, "-c", killer], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert read_manifest(tmp_path / "killed" / "last")["metadata"]["step"] == 4
    train_sft(config(demo_episodes, tmp_path / "killed", objectives=objectives))
    a, b = weights(tmp_path / "whole" / "last"), weights(tmp_path / "killed" / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_data_parallel_processes_match_one(demo_episodes, tmp_path):
    kw = dict(objectives=["bc", "steps"], steps=4, checkpoint_every=4, val_every=4)
    train_sft(config(demo_episodes, tmp_path / "one", **kw))
    cfg = config(demo_episodes, tmp_path / "two", **kw)
    script = tmp_path / "ddp.py"
    script.write_text(
        "from sefm_trainer.sft import SFTConfig, train_sft\n"
        f"train_sft(SFTConfig.model_validate_json({cfg.model_dump_json()!r}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    proc = subprocess.run([*run, "--master_port", str(29500 + os.getpid() % 1000), str(script)],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    def val(run_dir):
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [x["val"] for x in lines if "val" in x][-1]

    one, two = val(tmp_path / "one"), val(tmp_path / "two")
    assert one["bc/loss"] == pytest.approx(two["bc/loss"], rel=1e-4)
    assert one["steps/loss"] == pytest.approx(two["steps/loss"], rel=1e-4)
    a, b = weights(tmp_path / "one" / "last"), weights(tmp_path / "two" / "last")
    # A key bias has an exactly zero gradient (softmax ignores what it adds to every logit), so AdamW
    # moves it by float noise, differently in each reduction order: it is compared loosely.
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4 if k.endswith("k_proj.bias") else 1e-5), k
