"""The range part (parts.OutsideRange) pinned exactly: each column's range from its order statistics
or its fence, ties at the fence, the calibration offset fitted on a seeded half, and the checks on a
stored range. (What it sees on data: tests/test_estimators_parts.py.)"""

import numpy as np
import pytest

from deepuad.estimators.parts import OutsideRange


def column(n, mode, below=(), above=()):
    """n values at ``mode`` but for the ones given below and above it."""
    values = np.full(n, mode, dtype=np.float64)
    values[: len(below)] = below
    values[len(below) : len(below) + len(above)] = above
    return values


def test_a_nearly_constant_column_spans_its_kth_smallest_to_its_kth_largest_value_then_falls_back():
    """1,000 rows: k = 0.5 % = 5 and the inner range (1st-99th percentile) is empty in every column."""
    n = 1000
    reference = np.column_stack([
        # 9 rows below and 9 above the mode, 0.05 apart: the 5th smallest and 5th largest
        column(n, 10.0, below=10.0 - 0.05 * np.arange(1, 10), above=10.0 + 0.05 * np.arange(1, 10)),
        # the 5th smallest and largest are the mode: the 2nd smallest to the 2nd largest
        column(n, 3.0, below=[3.0 - 0.5, 3.0 - 0.25], above=[3.0 + 0.25, 3.0 + 0.5, 3.0 + 0.75]),
        # the 2nd largest is the mode too: the whole range
        column(n, 0.0, above=[7.0]),
        # constant: a unit span
        column(n, -2.5),
    ])
    part = OutsideRange().fit(reference, 0)
    np.testing.assert_allclose(part.low_, [10.0 - 0.25, 3.0 - 0.25, 0.0, -2.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(part.high_, [10.0 + 0.25, 3.0 + 0.5, 7.0, -2.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(part.span_, [0.5, 0.75, 7.0, 1.0], rtol=0, atol=1e-12)


def test_on_fewer_than_600_rows_the_order_statistic_is_the_second():
    """k = max(2, 0.5 % of the rows): on 500 rows the 2nd smallest and the 2nd largest."""
    n = 500
    reference = column(n, 1.0, above=[1.5, 2.0, 3.0, 5.0])[:, None]  # under 1 % off the mode: no inner range
    part = OutsideRange().fit(reference, 0)
    assert (part.low_[0], part.high_[0], part.span_[0]) == (1.0, 3.0, 2.0)


def test_a_spread_column_is_fenced_at_three_inner_ranges_and_a_value_on_the_fence_is_inside():
    """1st and 99th percentile (here the 2nd smallest and 2nd largest of 200 values) 0 and 1: the fence
    runs from 0 - 3 x 1 to 1 + 3 x 1, and values exactly on it belong to the range; a narrow column's
    span is its own range, however small."""
    body = np.linspace(0.0, 1.0, 198)
    on_fence = np.concatenate([body, [-3.0, 4.0]])
    beyond = np.concatenate([body, [-3.5, 4.5]])
    narrow = np.concatenate([body * 0.25, [0.1, 0.1]])
    part = OutsideRange().fit(np.column_stack([on_fence, beyond, narrow]), 0)
    np.testing.assert_array_equal(part.low_, [-3.0, 0.0, 0.0])
    np.testing.assert_array_equal(part.high_, [4.0, 1.0, 0.25])
    np.testing.assert_array_equal(part.span_, [7.0, 1.0, 0.25])


def test_the_level_is_the_95th_percentile_of_one_seeded_half_measured_against_the_range_of_the_other():
    rng = np.random.default_rng(0)
    reference = rng.standard_t(1, size=(401, 6))  # heavy tails: the held-out half often leaves the range
    seed = 11
    half = np.random.default_rng(seed).permutation(401) < 200
    first = OutsideRange()._fit_range(reference[half])  # the half's range, uncalibrated
    first.offset_ = 0.0
    by_chance = first.values(reference[~half], {})
    level = np.quantile(by_chance, 0.95)
    assert level > 0 and np.quantile(by_chance, 0.99) > level
    part = OutsideRange().fit(reference, seed)
    assert part.offset_ == level / (1 + level)
    whole = OutsideRange()._fit_range(reference)  # the range itself: all the rows, whatever the half
    for name in ("low_", "high_"):
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name))
    np.testing.assert_array_equal(part.span_, whole.span_ * (1 + level))
    assert OutsideRange().fit(reference, seed + 1).offset_ != part.offset_  # another seed, another half
    x = whole.high_[None, :] + np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    x[0, 2] += (level + 2.5 * (1 + level)) * whole.span_[2]  # 2.5 times (1 + level) ranges beyond the level
    assert part.values(x, {})[0] == pytest.approx(2.5)


def test_one_row_has_no_halves_and_no_offset():
    part = OutsideRange().fit(np.array([[5.0, -1.0]]), seed=0)
    assert part.offset_ == 0.0
    np.testing.assert_array_equal(part.values(np.array([[8.0, -1.0], [5.0, -1.0]]), {}), [3.0, 0.0])


def test_the_range_is_fitted_and_calibrated_in_float64():
    rng = np.random.default_rng(2)
    reference = (1e4 + rng.standard_t(3, size=(300, 4))).astype(np.float32)  # float32 differences round here
    as_float32, as_float64 = OutsideRange().fit(reference, 0), OutsideRange().fit(reference.astype(np.float64), 0)
    for name in ("low_", "high_", "span_"):
        assert getattr(as_float32, name).dtype == np.float64
        np.testing.assert_array_equal(getattr(as_float32, name), getattr(as_float64, name))
    assert as_float32.offset_ == as_float64.offset_


def test_values_of_every_chunk_and_of_no_columns():
    part = OutsideRange()._fit_range(np.array([[0.0, 0.0], [1.0, 2.0]]))
    part.offset_ = 0.5
    n = 2 * 16384 + 3  # three chunks
    ranges = (np.arange(n) % 7) + 1.0
    X = np.column_stack([1.0 + ranges, np.zeros(n)])  # column 0: 1..7 ranges above its maximum
    np.testing.assert_array_equal(part.values(X, {}), ranges - 0.5)
    assert part.values(X.astype(np.float32), {}).dtype == np.float64
    empty = OutsideRange().fit(np.zeros((10, 0)), 0)  # a table without columns: nothing lies outside, even by chance
    assert empty.offset_ == 0.0
    np.testing.assert_array_equal(empty.values(np.zeros((3, 0)), {}), np.zeros(3))


def fitted_state():
    reference = np.column_stack([np.linspace(0.0, 1.0, 50), np.full(50, 2.0)])  # column 1 constant: low == high
    part = OutsideRange().fit(reference, 0)
    assert part.low_[1] == part.high_[1]
    return part.state()


def test_restore_takes_back_what_fit_stores_with_a_constant_column_and_a_zero_offset():
    state = fitted_state()
    restored = OutsideRange().restore({**state, "range/offset": np.array([0.0])}, 2)
    assert restored.offset_ == 0.0
    np.testing.assert_array_equal(restored.high_, state["range/high"])
    restored = OutsideRange().restore({**state, "range/offset": np.array([1.5])}, 2)
    assert restored.offset_ == 1.5
    np.testing.assert_array_equal(restored.values(np.array([[4.0, 2.0]]), {}), [1.5])


@pytest.mark.parametrize("bad, message", [
    ({"range/high": np.array([1.0, 2.0, 3.0])}, r"^scorer range arrays do not have one value per column \(2\)$"),
    ({"range/low": np.array([np.nan, 0.0])}, r"^scorer range arrays are not finite, or a span is not positive$"),
    ({"range/span": np.array([1.0, 0.0])}, r"^scorer range arrays are not finite, or a span is not positive$"),
    ({"range/low": np.array([0.0, 3.0])}, r"^scorer range arrays are not finite, or a span is not positive$"),
    ({"range/offset": np.array([np.nan])}, r"^scorer range offset is not one finite value >= 0$"),
    ({"range/offset": np.array([np.inf])}, r"^scorer range offset is not one finite value >= 0$"),
    ({"range/offset": np.array([-0.5])}, r"^scorer range offset is not one finite value >= 0$"),
    ({"range/offset": np.array([0.5, 0.5])}, r"^scorer range offset is not one finite value >= 0$"),
])
def test_restore_refuses_a_range_fit_could_not_have_made(bad, message):
    with pytest.raises(ValueError, match=message):
        OutsideRange().restore({**fitted_state(), **bad}, 2)
