"""The trim cleaning rule (cleaning.py), pinned exactly: the initial outlyingness against a
re-derivation from its definition, the fence's quartile, spread and ties, the cluster rule and the
floor on the kept share. (What it buys on data: tests/test_estimators_parts.py.)"""

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from deepuad.estimators import cleaning, scoring


def robust_z(values, reference):
    center, spread = scoring.robust_scale(reference)
    return (values - center) / spread


def outlyingness_by_definition(X, seed, sample_rows):
    """The module docstring, step by step, with brute-force distances: the mean of the robust z-scores
    of log(mean distance to the 5 nearest sample rows, an exact copy skipped once) and of log(largest
    per-column |x - median| / max(IQR, range / 10)), over a seeded sample of the rows read as float32."""
    X = np.asarray(X, dtype=np.float32)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(X)) if len(X) <= sample_rows else np.sort(rng.choice(len(X), sample_rows, replace=False))
    sample = X[rows].astype(np.float64)
    distances = np.sort(cdist(X.astype(np.float64), sample), axis=1)
    copy = distances[:, 0] == 0.0
    neighbours = np.log(np.where(copy, distances[:, 1:6].mean(axis=1), distances[:, :5].mean(axis=1)) + 1e-12)
    q1, median, q3 = np.percentile(sample, [25, 50, 75], axis=0)
    spread = np.maximum(q3 - q1, 0.1 * (sample.max(axis=0) - sample.min(axis=0)))
    spread[spread <= 1e-12] = 1.0
    deviation = np.log((np.abs(X.astype(np.float64) - median) / spread).max(axis=1) + 1e-12)
    return (robust_z(neighbours, neighbours[rows]) + robust_z(deviation, deviation[rows])) / 2.0, rows


def test_initial_outlyingness_follows_its_definition_on_a_seeded_sample():
    """Columns that take each branch: plain spreads of different sizes (one below 1), a column whose
    IQR is 0 but not its range (the tenth of the range takes over), one constant on the sampled rows
    but not on the others (its spread is 1), six copies of one sampled row (distance 0 to its
    neighbours) and a row at the sample's median (deviation 0): both enter through log(. + 1e-12)."""
    rng = np.random.default_rng(4)
    n, sample_rows, seed = 150, 61, 3
    rows = np.sort(np.random.default_rng(seed).choice(n, sample_rows, replace=False))
    others = np.setdiff1d(np.arange(n), rows)
    X = np.column_stack([rng.normal(size=n) * 3.0 + 5.0, rng.normal(size=n) * 0.01, np.full(n, 10.0), np.zeros(n)])
    X[rng.choice(n, 8, replace=False), 2] += rng.uniform(5.0, 9.0, size=8)  # IQR 0, range ~9, away from 0
    X[others, 3] = rng.uniform(1.0, 2.0, size=len(others))  # constant (0) on the sampled rows only
    X[rows[:6]] = X[rows[0]]  # six copies among the sample
    X[others[0]] = np.median(X[rows].astype(np.float32).astype(np.float64), axis=0)  # odd sample: a real median
    X = X.astype(np.float32)
    expected, sampled = outlyingness_by_definition(X, seed, sample_rows)
    np.testing.assert_array_equal(sampled, rows)
    got = cleaning.initial_outlyingness(X, seed=seed, sample_rows=sample_rows)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # the branches were taken: a tenth of the range, a unit spread, distance 0 and deviation 0
    sample = X[rows].astype(np.float64)
    q1, q3 = np.percentile(sample[:, 2], [25, 75])
    assert q3 - q1 == 0 < np.ptp(sample[:, 2])
    assert np.ptp(sample[:, 3]) == 0 < np.ptp(X[:, 3])
    # the seed draws the sample: another one gives other values
    assert not np.allclose(cleaning.initial_outlyingness(X, seed=seed + 1, sample_rows=sample_rows), got)


def test_initial_outlyingness_reads_the_rows_as_float32():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3)) * (1.0 + 1e-3 * np.pi)  # values float32 cannot hold exactly
    np.testing.assert_array_equal(cleaning.initial_outlyingness(X, seed=0),
                                  cleaning.initial_outlyingness(X.astype(np.float32), seed=0))


def test_initial_outlyingness_of_a_row_does_not_depend_on_where_it_lies_in_a_long_table():
    """More rows than two chunks of 16,384: a row and its copies elsewhere in the table (another
    chunk, or the last rows) get the same outlyingness, so every chunk is computed, once."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(100, 3)).astype(np.float32)
    X = np.tile(base, (331, 1))  # 33,100 rows: row i is a copy of row i % 100
    got = cleaning.initial_outlyingness(X, seed=0)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, np.tile(got[:100], 331))
    assert np.ptp(got[:100]) > 1.0  # the rows do differ


def test_robust_z_is_centred_on_the_reference_median_and_scaled_by_its_spread():
    reference = np.array([2.0, 4.0, 6.0, 8.0, 10.0])  # median 6, IQR 4
    got = cleaning.robust_z(np.array([6.0, 14.0, -2.0], dtype=np.float32), reference)
    np.testing.assert_array_equal(got, [0.0, 2.0, -2.0])
    assert got.dtype == np.float64
    values = np.float32(1.0) + np.float32(2.0**-20)
    assert cleaning.robust_z(np.array([values]), np.array([0.0, 0.0, 3.0, 3.0]))[0] == (float(values) - 1.5) / 3.0


def test_trim_measures_float32_outlyingness_in_float64():
    outlyingness = np.random.default_rng(0).normal(size=100).astype(np.float32)  # quartiles between two values
    kept = np.arange(60)
    selected, threshold = cleaning.trim(outlyingness, 1.5, kept)
    as_float64 = outlyingness.astype(np.float64)
    upper = np.percentile(as_float64[kept], 75)
    assert threshold == upper + 1.5 * scoring.robust_scale(as_float64[kept])[1]
    assert float(np.percentile(outlyingness[kept], 75)) != upper  # float32 arithmetic would give another fence
    np.testing.assert_array_equal(selected, np.flatnonzero(as_float64 <= threshold))


def test_trim_keeps_a_row_exactly_at_the_fence():
    selected, threshold = cleaning.trim(np.arange(5.0), 0.0, np.arange(5))  # upper quartile 3, nothing added
    assert threshold == 3.0
    np.testing.assert_array_equal(selected, [0, 1, 2, 3])


def test_trim_cluster_rule_judges_every_cluster_by_its_median_on_the_fence_of_the_kept_rows():
    """The fence is upper quartile + cutoff x spread of the rows kept so far (here 3 + c x 2, the
    spread 2 being the IQR); a cluster is dropped whole when its median lies strictly beyond
    upper + cluster_cutoff x spread. Cluster 0 is judged like the others; -1 (no cluster) is not;
    a row of a cluster that stays is still judged by its own outlyingness."""
    kept = np.arange(9)
    body = np.arange(9.0) * 0.5  # 0 .. 4: upper quartile 3, IQR 2 -> scoring.robust_scale's spread 2
    assert scoring.robust_scale(body) == (2.0, 2.0) and np.percentile(body, 75) == 3.0
    # cluster 0: median 5 (beyond 3 + 0.5 x 2 = 4); cluster 1: median exactly 4 (not beyond);
    # cluster 2: the body, with one row at 20, far beyond the row fence 3 + 3 x 2 = 9; -1: a row at 8
    outlyingness = np.concatenate([body, [5.0, 5.0, 5.0, 4.0, 4.0, 4.0, 20.0, 8.0]])
    labels = np.array([2] * 9 + [0, 0, 0, 1, 1, 1, 2, -1])
    selected, threshold = cleaning.trim(outlyingness, 3.0, kept, labels, cluster_cutoff=0.5)
    assert threshold == 9.0
    np.testing.assert_array_equal(selected, [*range(9), 12, 13, 14, 16])
    # 3 + 1.0 x 2 = 5: cluster 0 (median 5) stays too (3 + 1.0 / 2 would drop clusters 0 and 1)
    np.testing.assert_array_equal(cleaning.trim(outlyingness, 3.0, kept, labels, cluster_cutoff=1.0)[0],
                                  [*range(9), 9, 10, 11, 12, 13, 14, 16])


def test_trim_cluster_rule_with_missing_labels_warns_of_nothing():
    """Labels need not be consecutive (a cluster may have lost every row): an empty cluster has no
    median to judge and raises no warning."""
    outlyingness = np.concatenate([np.arange(9.0) * 0.5, [5.0, 5.0]])
    labels = np.array([0] * 9 + [3, 3])  # clusters 1 and 2 are empty
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        selected, _ = cleaning.trim(outlyingness, 3.0, np.arange(9), labels, cluster_cutoff=0.5)
    np.testing.assert_array_equal(selected, np.arange(9))


def test_trim_keeps_the_least_outlying_half_when_the_fence_keeps_fewer_and_its_threshold_says_so():
    for seed in range(400):  # many orders of the rows: the floor is the 500th smallest value in every one
        outlyingness = np.random.default_rng(seed).normal(size=1000)
        kept = np.argsort(outlyingness)[:100]  # a fence from the lowest tenth keeps about a tenth
        selected, threshold = cleaning.trim(outlyingness, 0.0, kept)
        assert threshold == np.sort(outlyingness)[499], seed
        np.testing.assert_array_equal(selected, np.flatnonzero(outlyingness <= threshold))
        assert len(selected) == 500
    # exactly the floor's number of rows inside the fence: the fence's own threshold stands
    fence_rows = np.arange(10.0)
    selected, threshold = cleaning.trim(fence_rows, 0.0, np.arange(7))  # upper quartile of 0..6: 4.5
    assert threshold == 4.5 and len(selected) == 5 == np.ceil(0.5 * 10)


# ------------------------------------------------------------------ the reference trimmed by its tails
def tails_by_definition(reference):
    """ECOD's sum over columns of -log of the smaller tail probability, (rows at or below + 1) / (n + 1)
    or (rows at or above + 1) / (n + 1), each row against all rows of ``reference``, brute force."""
    R = np.asarray(reference, dtype=np.float64)
    below = (R[None, :, :] <= R[:, None, :]).sum(axis=1)
    above = (R[None, :, :] >= R[:, None, :]).sum(axis=1)
    return -np.log((np.minimum(below, above) + 1.0) / (len(R) + 1.0)).sum(axis=1)


def test_tails_trim_keeps_the_rows_within_tukey_s_fence_on_the_tails_values():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1000, 4)).astype(np.float32)
    values = tails_by_definition(reference)
    q1, q3 = np.percentile(values, [25, 75])
    for cutoff in np.linspace(0.05, 3.0, 60):
        keep = cleaning.tails_trim(reference, cutoff)
        np.testing.assert_array_equal(keep, values <= q3 + cutoff * (q3 - q1))
    assert 0 < (~cleaning.tails_trim(reference, 1.0)).sum() > (~cleaning.tails_trim(reference, 3.0)).sum()


def test_tails_trim_keeps_a_row_exactly_at_the_fence():
    """201 rows: the upper quartile is the 151st smallest tails value itself, and at cutoff 0 the fence
    is that value."""
    reference = np.random.default_rng(0).normal(size=(201, 5)).astype(np.float32)
    values = tails_by_definition(reference)
    assert len(np.unique(values)) == 201
    keep = cleaning.tails_trim(reference, 0.0)
    assert keep.sum() == 151 and keep[np.argsort(values)[150]]


def test_tails_trim_leaves_out_a_group_of_anomalies_many_and_alike_and_few_normal_rows():
    """A tenth of the rows, tight and far out in 12 of 20 columns, like the other rows in the rest: each
    other's nearest neighbours, but in the tails of those 12 columns at once. (A tenth, not a fifth: a
    group as large as a quarter of the rows would be the quartiles the fence is drawn from.)"""
    rng = np.random.default_rng(1)
    normal = rng.normal(size=(900, 20))
    group = rng.normal(size=(100, 20))
    group[:, :12] = 6.0 + 0.05 * group[:, :12]
    keep = cleaning.tails_trim(np.vstack([normal, group]).astype(np.float32), 1.0)
    assert keep[:900].mean() > 0.95 and not keep[900:].any()


def test_tails_trim_keeps_three_rows_in_four_at_least_and_all_of_them_alike():
    """The fence lies at or above the upper quartile: at cutoff 0 exactly the rows at or below it stay
    (ties included), and where most rows are one row, every copy of it stays."""
    reference = np.random.default_rng(2).normal(size=(200, 3)).astype(np.float32)
    values = tails_by_definition(reference)
    np.testing.assert_array_equal(cleaning.tails_trim(reference, 0.0), values <= np.percentile(values, 75))
    assert cleaning.tails_trim(reference, 0.0).mean() >= 0.75
    copies = np.zeros((100, 2), dtype=np.float32)
    copies[80:] = np.random.default_rng(3).normal(size=(20, 2))
    assert cleaning.tails_trim(copies, 1.0)[:80].all()
