import pytest

from sefm_policy.checkpoint import save_checkpoint
from sefm_policy.config import EFMConfig
from sefm_policy.model import EFM
from sefm_trainer.evaluate import EvalConfig, run_evaluation, summarise, wilson_interval
from sefm_trainer.rollout import PracticeEpisode


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(45, 100)
    assert (round(low, 4), round(high, 4)) == (0.3561, 0.5476)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_detector_precision_and_recall_against_ground_truth_and_none_without_a_detector():
    def ep(truth, fired):
        e = PracticeEpisode(seed=0, instruction="", frames=[None], ground_truth_success=truth)
        e.detector_fired_at = 3 if fired else None
        return e

    summary = summarise([ep(True, True), ep(True, False), ep(False, True), ep(False, False)])
    assert summary["success_rate"] == 0.5 and summary["detector_precision"] == 0.5 and summary["detector_recall"] == 0.5
    without = summarise([ep(True, False), ep(False, False)], detector=False)
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
