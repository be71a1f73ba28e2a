import pytest

from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_reward.calibration import TOLERANCE
from sefm_trainer import rollout
from sefm_trainer.evaluate import EvalConfig, paired_comparison, run_evaluation, summarise, wilson_interval
from sefm_trainer.rollout import PracticeEpisode


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(45, 100)
    assert (round(low, 4), round(high, 4)) == (0.3561, 0.5476)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_detector_precision_and_recall_count_a_firing_right_only_near_the_goal_and_none_without_a_detector():
    def ep(truth, fired_at):
        e = PracticeEpisode(seed=0, instruction="", frames=[None] * 11, ground_truth_success=truth)
        e.tokens, e.detector_fired_at = [None] * 10, fired_at
        return e

    summary = summarise([ep(True, 9), ep(True, None), ep(False, 3), ep(False, None)])
    assert summary["success_rate"] == 0.5 and summary["detector_precision"] == 0.5 and summary["detector_recall"] == 0.5
    assert summary["detector_early"] == 0.0
    early = summarise([ep(True, 10 - TOLERANCE), ep(True, 9 - TOLERANCE)])  # the goal at step 10
    assert early["detector_precision"] == 0.5 and early["detector_recall"] == 0.5 and early["detector_early"] == 0.5
    without = summarise([ep(True, None), ep(False, None)], detector=False)
    assert without["detector_precision"] is None and without["detector_recall"] is None


def test_eval_can_override_how_a_chain_reads_its_places_and_says_which_it_used(tmp_path):
    chain = save_checkpoint(EFM.build(EFMConfig(reason=True, action_from="places")), tmp_path / "chain")
    common = dict(checkpoint=str(chain), task_family="block2block4", episodes=2, max_steps=3)
    assert run_evaluation(EvalConfig(**common))["place_reads"] == "single"
    read = run_evaluation(EvalConfig(**common, place_reads="half_patch"))
    assert read["place_reads"] == "half_patch" and read["episodes"] == 2
    plain = save_checkpoint(EFM.build(EFMConfig()), tmp_path / "plain")
    with pytest.raises(ValueError, match="place_reads"):
        run_evaluation(EvalConfig(**{**common, "checkpoint": str(plain)}, place_reads="half_patch"))


def test_a_paired_comparison_counts_the_seeds_each_evaluation_alone_won_and_refuses_other_seeds():
    def run(outcomes, first=0):
        return {"per_episode": [{"seed": first + i, "success": ok, "length": 5} for i, ok in enumerate(outcomes)]}

    before, after = run([False] * 12 + [True] * 8), run([True] * 12 + [True] * 7 + [False])
    paired = paired_comparison(before, after)
    assert (paired["gained"], paired["lost"], paired["seeds"]) == (12, 1, 20)
    assert paired["mcnemar_p"] == pytest.approx(2 * 14 / 2**13, abs=1e-6)  # P(X <= 1), X ~ Bin(13, 1/2), twice
    assert paired["before"]["success_rate"] == 0.4 and paired["after"]["success_rate"] == 0.95
    assert paired_comparison(before, before)["mcnemar_p"] == 1.0
    with pytest.raises(ValueError, match="different seeds"):
        paired_comparison(before, run([True] * 20, first=1))
    with pytest.raises(ValueError, match="per_episode"):
        paired_comparison({"success_rate": 0.4}, after)


def test_eval_writes_each_seed_and_compares_seed_by_seed_with_an_earlier_run_of_the_same_seeds(tmp_path):
    policy = save_checkpoint(EFM.build(EFMConfig()), tmp_path / "policy")
    common = dict(checkpoint=str(policy), task_family="block2block4", episodes=2, max_steps=2, seed=7)
    first = run_evaluation(EvalConfig(**common, out=str(tmp_path / "first.json")))
    assert [ep["seed"] for ep in first["per_episode"]] == [7, 8]
    assert all(ep["length"] == 2 and not ep["success"] for ep in first["per_episode"])
    again = run_evaluation(EvalConfig(**common, compare=str(tmp_path / "first.json")))
    assert again["compared_with"]["gained"] == again["compared_with"]["lost"] == 0
    with pytest.raises(ValueError, match=r"did not run seeds 8\.\.9"):
        run_evaluation(EvalConfig(**{**common, "seed": 8}, compare=str(tmp_path / "first.json")))


def test_rollouts_act_on_past_the_goal_and_keep_the_simulators_verdict_on_every_frame(monkeypatch):
    """A stand-in env whose task counts as done from its second step on (and undone after its
    fourth): the episode runs ``after_goal`` steps past the goal, each frame's verdict kept."""
    real = rollout.make_env

    class DoneForAWhile:
        def __init__(self, env):
            self.env, self.steps = env, 0

        def reset(self, **kwargs):
            self.steps = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            self.steps += 1
            return self.env.step(action)

        def success(self):
            return 2 <= self.steps <= 4

        def close(self):
            self.env.close()

    def make_env(*args, **kwargs):
        return DoneForAWhile(real(*args, **kwargs))

    monkeypatch.setattr(rollout, "make_env", make_env)
    policy = EFM.build(EFMConfig()).eval()
    ep = rollout.run_episodes(policy, None, [3], max_steps=20, end_on="ground_truth", after_goal=3, envs=1)[0]
    assert ep.length == 5 and ep.done == [False, False, True, True, True, False]
    assert ep.ground_truth_success is False  # the final frame's verdict: pushed past its goal
    at_goal = rollout.run_episodes(policy, None, [3], max_steps=20, end_on="ground_truth", envs=1)[0]
    assert at_goal.length == 2 and at_goal.done == [False, False, True] and at_goal.ground_truth_success
    with pytest.raises(ValueError, match="after_goal"):
        rollout.run_episodes(policy, None, [3], end_on="detector", after_goal=2)
