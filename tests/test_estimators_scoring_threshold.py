"""The threshold rule's arithmetic (scoring.robust_scale, scoring.estimate_contamination) at the
edges the rule's tests in test_estimators_scoring.py leave open: the quartiles themselves and
float32 scores, which the rule measures in float64."""

import numpy as np

from deepuad.estimators import scoring


def test_robust_scale_takes_the_25th_and_75th_percentiles_of_all_values_when_that_is_wider():
    values = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 9.0, 9.0, 9.0])  # IQR 9 - 0; distinct values' IQR 3 - 1
    assert scoring.robust_scale(values) == (2.0, 9.0)


def test_robust_scale_counts_a_spread_of_1e_12_as_none():
    values = np.array([0.0, 0.0, 0.0, 1e-12, 1e-12, 1e-12])  # IQR exactly 1e-12, standard deviation below it
    assert np.subtract(*np.percentile(values, [75, 25])) == 1e-12
    assert scoring.robust_scale(values) == (0.5e-12, 1.0)


def test_robust_scale_of_float32_values_is_computed_in_float64():
    values = np.random.default_rng(0).normal(size=10).astype(np.float32)  # quartiles between two values
    as_float64 = values.astype(np.float64)
    q1, median, q3 = np.percentile(as_float64, [25, 50, 75])
    assert scoring.robust_scale(values) == (median, q3 - q1)
    assert np.percentile(values, 25) != q1  # float32 arithmetic would give another quartile


def test_a_float32_score_just_beyond_three_robust_sigmas_counts():
    """The cut-off, median + 3 x 1.4826 MAD, is taken in float64: a float32 score that lies above it
    by less than float32 resolves counts (compared in float32 the cut-off would round up onto it)."""
    cutoff = 3.0 * 1.4826  # median 0, MAD 1
    just_beyond = np.float32(cutoff)
    assert float(just_beyond) > cutoff
    scores = np.r_[np.tile([-1.0, 1.0], 50), [just_beyond, 10.0, -just_beyond, -10.0]].astype(np.float32)
    assert scoring.estimate_contamination(scores) == 2 / len(scores)
