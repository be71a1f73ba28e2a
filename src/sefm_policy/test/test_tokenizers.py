import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sefm_policy.tokenizers import (
    GroundedActionTokenizer,
    JointTokenizer,
    PlaceTokenizer,
    SignMagnitudeActionTokenizer,
    UniformBins,
    language_table_action,
    language_table_steps,
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(arrays(np.float64, (7, 2), elements=st.floats(-0.1, 0.1)))
def test_language_table_action_round_trips_within_half_a_unit(actions):
    tok = SignMagnitudeActionTokenizer()
    tokens = tok.encode(actions)
    assert tokens.shape == (7, 4)
    assert np.abs(tok.decode(tokens) - actions).max() <= tok.unit / 2 + 1e-12
    assert tok.clipped == 0


@given(arrays(np.float64, (5, 2), elements=st.floats(-1e6, 1e6) | st.sampled_from([np.inf, -np.inf])))
def test_language_table_action_clips_out_of_range_and_counts(actions):
    tok = SignMagnitudeActionTokenizer()
    decoded = tok.decode(tok.encode(actions))
    assert np.abs(decoded).max() <= tok.limit + 1e-12
    assert tok.clipped == int((np.abs(actions) > tok.limit).sum())
    inside = np.abs(actions) <= tok.limit
    assert np.all(np.abs(decoded - actions)[inside] <= tok.unit / 2 + 1e-12)


def test_zero_action_has_positive_sign():
    assert SignMagnitudeActionTokenizer().encode([0.0, -0.001]).tolist() == [0, 0, 0, 0]


def test_nan_is_rejected_with_its_position():
    with pytest.raises(ValueError, match=r"NaN at index \(1, 0\)"):
        SignMagnitudeActionTokenizer().encode([[0.0, 0.0], [np.nan, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        UniformBins(0, 100, 50).encode([3.0, np.nan])
    with pytest.raises(ValueError, match="NaN"):
        JointTokenizer([-1.0] * 2, [1.0] * 2).encode([0.0, np.nan])


@settings(deadline=None)
@given(st.data())
def test_aloha_action_chunk_round_trips_within_half_a_bin(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    low = rng.uniform(-3, 0, 14)
    high = low + rng.uniform(0.1, 3, 14)
    tok = JointTokenizer(low.tolist(), high.tolist(), bins=256, chunk=5)
    x = rng.uniform(low, high, size=(3, 5, 14))
    tokens = tok.encode(x)
    assert tokens.shape == (3, 70) and tokens.min() >= 0 and tokens.max() < 256
    half_bin = (high - low) / 256 / 2
    assert np.all(np.abs(tok.decode(tokens) - x) <= half_bin + 1e-9)
    assert tok.clipped == 0


def test_joint_values_outside_the_stats_are_clipped_and_counted():
    tok = JointTokenizer([-1.0, -1.0], [1.0, 1.0], bins=256)
    tokens = tok.encode([[5.0, -0.5], [-np.inf, 0.0]])
    assert tok.clipped == 2
    assert tokens[0, 0] == 255 and tokens[1, 0] == 0


def test_joint_stats_from_data_cover_the_data():
    data = np.random.default_rng(0).normal(size=(100, 14))
    data[:, 3] = 0.25  # a joint that never moves still gets a valid range
    tok = JointTokenizer.from_data(data, chunk=1)
    assert tok.clipped == 0 and np.all(np.abs(tok.decode(tok.encode(data)) - data) < 0.05)


def test_joint_stats_must_be_ordered():
    with pytest.raises(ValueError, match="joint 1"):
        JointTokenizer([0.0, 1.0], [1.0, 1.0])


@given(st.integers(0, 100))
def test_language_table_steps_to_go_is_within_half_a_bin(steps):
    tok = UniformBins(0.0, 100.0, 50)
    (k,) = tok.encode([steps])
    assert 0 <= k < 50 and abs(tok.centres[k] - steps) <= tok.width / 2


@given(st.integers(0, 300))
def test_aloha_steps_to_go_has_one_token_per_value(steps):
    tok = UniformBins(-0.5, 300.5, 301)
    (k,) = tok.encode([steps])
    assert k == steps and tok.decode([k])[0] == steps


def test_language_table_steps_a_step_a_bin_give_a_done_board_its_own_token_and_centre_zero():
    paper, per_step = language_table_steps(), language_table_steps(1)
    assert paper.encode([0, 1]).tolist() == [0, 0] and paper.centres[0] == 1.0
    assert per_step.encode([0, 1, 100]).tolist() == [0, 1, 100] and per_step.decode([0, 7]).tolist() == [0.0, 7.0]
    with pytest.raises(ValueError, match="1 or 2"):
        language_table_steps(3)


@given(finite)
def test_uniform_bins_never_crash_on_finite_input(x):
    tok = UniformBins(0.0, 100.0, 50)
    (k,) = tok.encode([x])
    assert 0 <= k < 50


def test_decode_rejects_tokens_outside_their_slot():
    with pytest.raises(ValueError, match="outside its slot"):
        SignMagnitudeActionTokenizer().decode([[2, 0, 0, 0]])
    with pytest.raises(ValueError, match="outside its slot"):
        UniformBins(0, 100, 50).decode([50])


def test_the_worked_example_in_the_tokenizer_docstring_holds():
    import doctest

    from sefm_policy import tokenizers

    result = doctest.testmod(tokenizers)
    assert result.attempted >= 6 and result.failed == 0


def test_a_grounded_action_says_three_places_then_the_action_and_decodes_to_the_action():
    grounded = GroundedActionTokenizer(language_table_action())
    places = [[0.1, 0.2], [0.5, 0.5], [0.99, 0.0]]
    tokens = grounded.encode([0.034, -0.052], places)
    assert len(tokens) == len(grounded.slot_sizes) == 16 and grounded.slot_sizes[:12] == (8,) * 12
    assert tokens[12:].tolist() == [0, 3, 1, 5] and np.allclose(grounded.decode(tokens), [0.03, -0.05])
    assert np.abs(grounded.decode_places(tokens) - places).max() <= 1 / 64  # within a cell of the 64 x 64 grid
    assert tokens[:4].tolist() == [1, 0, 4, 6]  # the first place: row digits before column digits, coarse first
    with pytest.raises(ValueError, match="3 places"):
        grounded.encode([0.0, 0.0], places[:2])


@given(arrays(np.float64, (5, 2), elements=st.floats(0.0, 1.0)))
def test_a_place_in_mixed_digits_decodes_within_half_a_cell_of_where_it_was(places):
    patch = PlaceTokenizer((6, 4))  # which of 6 x 6 patches, then where in it
    assert patch.slot_sizes == (6, 6, 4, 4) and patch.cells == 24
    tokens = patch.encode(places)
    assert np.all(tokens < np.array(patch.slot_sizes))
    assert np.abs(patch.decode(tokens) - places).max() <= 0.5 / 24 + 1e-12


def test_mixed_digits_write_the_patch_first_then_the_place_within_it():
    # column 0.5 -> cell 12 of 24 = patch 3, quarter 0; row 0.99 -> cell 23 = patch 5, quarter 3
    assert PlaceTokenizer((6, 4)).encode([0.5, 0.99]).tolist() == [5, 3, 3, 0]
    with pytest.raises(ValueError, match="radices"):
        PlaceTokenizer((8, 1))


@given(arrays(np.float64, (6, 2), elements=st.floats(0.0, 1.0)))
def test_a_coarse_digit_fed_a_cell_off_is_followed_by_the_near_edge_not_the_true_cell(places):
    patch = PlaceTokenizer((6, 8, 2))
    true = patch.encode(places)
    target, fed = patch.neighbour_teaching(true, np.random.default_rng(0), rate=1.0)
    assert (target[:, :2] == true[:, :2]).all()  # the coarse digits are still to be said right
    off = fed[:, :2] != true[:, :2]
    assert (np.abs(fed[:, :2] - true[:, :2]) <= 1).all() and (fed[:, 2:] == target[:, 2:]).all()
    # An axis fed off now names the place beside the true one, at most half a patch and a cell away;
    # on an axis at the image's border there is no neighbour, and nothing changes.
    error = np.abs(patch.decode(fed) - places)[:, ::-1]  # (row, column), the digits' order
    assert (error[off] <= 0.5 / 6 + 1 / patch.cells + 1e-12).all()
    for axis in (0, 1):
        assert (target[~off[:, axis], axis::2] == true[~off[:, axis], axis::2]).all()
    kept, same = patch.neighbour_teaching(true, np.random.default_rng(0), rate=0.0)
    assert (kept == true).all() and (same == true).all()
    with pytest.raises(ValueError, match="coarse and a finer digit"):
        PlaceTokenizer((48,)).neighbour_teaching(true[:, :2], np.random.default_rng(0), 1.0)
