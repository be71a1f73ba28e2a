import numpy as np
import pytest

from sefm_sim_bridge.aloha import CAMERAS, START_COMMAND, SUBSTEPS, AlohaInsertionEnv
from sefm_sim_bridge.aloha_demonstrator import PICK_QUAT, ArmIK, InsertionDemonstrator
from sefm_sim_bridge.envs import make_env, model_view, run_demonstration


@pytest.fixture
def env():
    env = AlohaInsertionEnv(max_steps=25)
    yield env
    env.close()


def test_reset_places_peg_and_socket_from_the_seed(env):
    env.reset(seed=3)
    first = env.object_poses()
    env.reset(seed=4)
    other = env.object_poses()
    env.reset(seed=3)
    again = env.object_poses()
    np.testing.assert_array_equal(first["peg"], again["peg"])
    assert not np.allclose(first["peg"][:2], other["peg"][:2])
    assert first["peg"][0] > 0 > first["socket"][0], "peg on the right arm's side, socket on the left's"


def test_observation_has_four_small_cameras_and_fourteen_joints(env):
    obs, _ = env.reset(seed=0)
    assert set(obs["images"]) == set(CAMERAS)
    assert all(im.shape == (32, 64, 3) and im.dtype == np.uint8 for im in obs["images"].values())
    assert obs["images"]["top"].std() > 5, "the top camera sees the scene, not a blank frame"
    np.testing.assert_allclose(obs["qpos"], START_COMMAND, atol=1e-6)
    frames, state = model_view(obs)
    assert len(frames) == 4 and state.shape == (14,)


def test_a_chunk_runs_every_command_for_one_control_period(env):
    env.reset(seed=0)
    chunk = np.tile(START_COMMAND, (5, 1))
    chunk[:, 0] = np.linspace(0.05, 0.25, 5)  # left waist
    before = env.physics.data.time
    obs, *_ = env.step(chunk)
    assert env.physics.data.time - before == pytest.approx(5 * SUBSTEPS * 0.02)
    np.testing.assert_array_equal(env.command, chunk[-1])
    assert chunk[2, 0] < obs["qpos"][0] < chunk[4, 0], "the waist follows the ramp, one servo lag behind"


def test_matches_gym_aloha_physics_for_a_held_command():
    gym_aloha_env = pytest.importorskip("gym_aloha.env")
    theirs = gym_aloha_env.AlohaEnv("insertion", obs_type="pixels_agent_pos")
    ours = AlohaInsertionEnv(render_images=False)
    theirs.reset(seed=7)
    ours.reset(seed=7)
    for _ in range(SUBSTEPS):
        obs, *_ = theirs.step(START_COMMAND.astype(np.float32))
    ours.step(START_COMMAND)
    np.testing.assert_allclose(ours.qpos, obs["agent_pos"], atol=1e-6)
    np.testing.assert_allclose(ours.task.get_env_state(ours.physics), theirs._env.physics.data.qpos[16:], atol=1e-6)


def test_inverse_kinematics_reaches_a_grasp_pose(env):
    env.reset(seed=0)
    ik = ArmIK(env.physics.model.ptr, "left")
    target = np.array([-0.12, 0.52, 0.1])

    q = ik.solve(START_COMMAND[:6], target, PICK_QUAT["left"])
    reached, _ = ik.pose(q)
    np.testing.assert_allclose(reached, target, atol=2e-3)


def test_scripted_demonstrator_inserts_the_peg_on_most_seeds():
    env = make_env("insertion", max_steps=25, render_images=False)
    demo = InsertionDemonstrator()
    infos = [run_demonstration(env, demo, seed) for seed in range(10)]
    env.close()
    lengths = [i["steps"] for i in infos]
    assert sum(i["success"] for i in infos) >= 8
    assert len(set(lengths)) > 1, "timing noise spreads the episode lengths"
