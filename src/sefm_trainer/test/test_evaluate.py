import pytest

from sefm_trainer.evaluate import summarise, wilson_interval
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
