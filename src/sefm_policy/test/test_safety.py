import numpy as np

from sefm_policy.safety import SafetyLayer, SafetyLimits


def layer(actuation_enabled=True):
    limits = SafetyLimits(
        low=np.array([-0.1, -0.1]),
        high=np.array([0.1, 0.1]),
        max_change=np.array([0.05, 0.05]),
        stale_after_s=0.5,
        actuation_enabled=actuation_enabled,
    )
    return SafetyLayer(limits)


def test_commands_are_clamped_and_rate_limited():
    s = layer()
    out, why = s.filter([0.5, -0.02])
    assert why is None and np.allclose(out, [0.05, -0.02])  # clamped to 0.1, then at most +0.05 from 0
    out, _ = s.filter([0.5, -0.02])
    assert np.allclose(out, [0.1, -0.02])
    assert s.events["clamped"] == 2 and s.events["rate_limited"] == 1


def test_nan_stale_estop_and_disarmed_all_stop_the_robot():
    s = layer()
    assert s.filter([np.nan, 0.0])[1] == "non-finite command"
    assert s.filter([0.01, 0.0], frame_age_s=0.6)[1].startswith("stale observation")
    s.set_estop(True)
    out, why = s.filter([0.01, 0.01])
    assert why == "estop" and np.all(out == 0)
    s.set_estop(False)
    assert s.filter([0.01, 0.01])[1] is None
    disarmed = layer(actuation_enabled=False)
    out, why = disarmed.filter([0.01, 0.01])
    assert why == "actuation disabled" and np.all(out == 0)


def test_after_a_stop_the_rate_limit_restarts_from_rest():
    s = layer()
    s.filter([0.05, 0.0])
    s.filter([0.1, 0.0])
    s.set_estop(True)
    s.filter([0.1, 0.0])
    s.set_estop(False)
    out, _ = s.filter([0.1, 0.0])
    assert np.allclose(out, [0.05, 0.0])


def test_command_limits_follow_the_embodiment():
    from sefm_policy.config import EFMConfig
    from sefm_policy.embodiment import embodiment_for

    low, high = embodiment_for(EFMConfig()).command_limits(0.05)
    assert low.tolist() == [-0.05, -0.05] and high.tolist() == [0.05, 0.05]
    aloha = embodiment_for(EFMConfig(embodiment="aloha", joint_low=[-1.0] * 14, joint_high=[2.0] * 14))
    low, high = aloha.command_limits(0.05)
    assert low.shape == (70,) and set(low) == {-1.0} and set(high) == {2.0}
