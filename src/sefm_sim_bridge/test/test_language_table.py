import itertools

import mujoco
import numpy as np
import pytest

from sefm_policy.vocab import build_tiny_tokenizer
from sefm_sim_bridge.demonstrator import PushDemonstrator
from sefm_sim_bridge.envs import run_demonstration
from sefm_sim_bridge.language_table import EFFECTOR_HIGH, MAX_DELTA, MIN_SPACING, LanguageTableEnv
from sefm_sim_bridge.scene import board_point, image_point
from sefm_sim_bridge.tasks import LOCATIONS, Task, region_centre


@pytest.fixture
def env():
    e = LanguageTableEnv("block2block")
    yield e
    e.close()


def place(env, name, xy):
    adr = env._qpos[name]
    env.data.qpos[adr : adr + 2] = xy
    env.data.qvel[:] = 0
    mujoco.mj_forward(env.model, env.data)


def test_reset_is_deterministic_from_a_seed():
    a, b = LanguageTableEnv("block2block"), LanguageTableEnv("block2block")
    try:
        oa, _ = a.reset(seed=11)
        ob, _ = b.reset(seed=11)
        assert oa["instruction"] == ob["instruction"] and np.array_equal(oa["rgb"], ob["rgb"])
        for action in np.random.default_rng(0).uniform(-0.05, 0.05, (10, 2)):
            oa, *_ = a.step(action)
            ob, *_ = b.step(action)
        assert np.array_equal(oa["rgb"], ob["rgb"])
        assert all(np.array_equal(a.object_positions()[k], v) for k, v in b.object_positions().items())
        oc, _ = a.reset(seed=12)
        assert not np.array_equal(oc["rgb"], ob["rgb"])
    finally:
        a.close()
        b.close()


def test_resets_place_objects_apart(env):
    for seed in range(10):
        env.reset(seed=seed)
        xy = [*env.object_positions().values(), env.effector]
        assert min(np.linalg.norm(p - q) for p, q in itertools.combinations(xy, 2)) >= MIN_SPACING - 0.01


def test_actions_are_clipped_per_step_and_to_the_workspace(env):
    env.reset(seed=0)
    before = env.effector
    env.step([5.0, -5.0])
    moved = env.effector - before
    assert np.all(np.abs(moved) <= MAX_DELTA + 1e-9)
    for _ in range(20):
        env.step([MAX_DELTA, MAX_DELTA])
    assert np.allclose(env.effector, EFFECTOR_HIGH)
    with pytest.raises(ValueError, match="finite"):
        env.step([np.nan, 0.0])


def test_observation_holds_current_and_previous_frame(env):
    obs, _ = env.reset(seed=3)
    assert obs["rgb"].shape == (96, 96, 3) and obs["rgb"].dtype == np.uint8 and obs["rgb"].std() > 10
    first = obs["rgb"]
    obs, *_ = env.step([0.08, 0.0])
    assert np.array_equal(obs["prev_rgb"], first) and not np.array_equal(obs["rgb"], first)


def test_block2block_success_needs_the_blocks_within_five_centimetres(env):
    env.reset(seed=0)
    task = Task("block2block", "push the red moon to the blue cube", "red moon", target_obj="blue cube")
    env.task = task
    place(env, "blue cube", [0.0, 0.0])
    place(env, "red moon", [0.045, 0.0])
    assert env.success()
    place(env, "red moon", [0.0, 0.056])
    assert not env.success()


def test_location_success_is_by_region(env):
    env.reset(seed=0)
    env.task = Task("block2location", "push the red moon to the top left of the table", "red moon", location="top left")
    place(env, "red moon", region_centre("top left"))
    assert env.success()
    place(env, "red moon", region_centre("center"))
    assert not env.success()


def test_episode_ends_on_success_or_max_steps():
    env = LanguageTableEnv("block2block", max_steps=3, render_images=False)
    env.reset(seed=0)
    results = [env.step([0.0, 0.0]) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]  # truncated at max_steps
    env.close()


def test_demonstrator_solves_most_block2block_tasks():
    env = LanguageTableEnv("block2block", render_images=False)
    demo = PushDemonstrator()
    solved = sum(run_demonstration(env, demo, seed)["success"] for seed in range(20))
    assert solved >= 17


def test_banana_table_uses_the_nine_location_instructions():
    env = LanguageTableEnv("banana", render_images=False)
    seen = set()
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        words = obs["instruction"].split(" the banana to the ")
        assert len(words) == 2 and words[0] in {"push", "move", "slide", "put"} and words[1].endswith(" of the table")
        seen.add(words[1].removesuffix(" of the table"))
    assert seen <= set(LOCATIONS) and len(seen) >= 7
    env.close()


def test_every_instruction_word_is_in_the_tiny_model_vocabulary():
    tok = build_tiny_tokenizer()
    for family in ("block2block", "block2location", "banana"):
        env = LanguageTableEnv(family, render_images=False)
        for seed in range(30):
            obs, _ = env.reset(seed=seed)
            assert tok.unk_token_id not in tok.encode(obs["instruction"], add_special_tokens=False), obs["instruction"]
        env.close()


def test_unknown_task_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown task_family 'stack'"):
        LanguageTableEnv("stack")


def test_the_top_down_view_shows_each_block_where_image_point_puts_it(env):
    env.reset(seed=5)
    frame = env.render()
    h, w = frame.shape[:2]
    for name, xy in env.object_positions().items():
        colour, shape = name.split()
        if shape == "moon":  # a crescent's centre is not on the block
            continue
        col, row = image_point(xy)
        r, g, b = frame[int(row * h), int(col * w)].astype(int)
        seen = {"red": r > g + 60 and r > b + 60, "blue": b > r + 60, "green": g > r + 40 and g > b + 40}
        seen["yellow"] = r > b + 80 and g > b + 80
        assert seen[colour], (name, (r, g, b))
    assert board_point(*image_point((0.1, -0.2))) == pytest.approx((0.1, -0.2))


def test_the_four_block_set_puts_one_block_of_each_colour_on_the_board():
    env = LanguageTableEnv("block2block4")
    try:
        env.reset(seed=2)
        assert sorted(env.object_positions()) == ["blue cube", "green star", "red moon", "yellow pentagon"]
        assert env.task.obj in env.object_positions() and env.task.target_obj in env.object_positions()
        parked = [n for n in env._qpos if n not in env.object_positions()]
        assert len(parked) == 4 and all(env.data.qpos[env._qpos[n]] > 1.0 for n in parked)
        assert run_demonstration(env, PushDemonstrator(), 2)["success"]
    finally:
        env.close()
