import numpy as np
import pytest

from deepuad.estimators.selection import cluster_variances, n_changed, select, select_low_variance


def test_cluster_variance_is_mean_squared_distance_to_centroid():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(500, 3))
    labels = rng.integers(0, 4, size=500)
    labels[:7] = -1  # noise rows are ignored
    sizes, variances = cluster_variances(Z, labels, 4)
    for k in range(4):
        members = Z[labels == k]
        assert sizes[k] == len(members)
        assert variances[k] == pytest.approx(((members - members.mean(0)) ** 2).sum(1).mean())


def test_percentile_over_clusters_keeps_clusters_below_threshold():
    # 10 clusters with variances 1..10 and very different sizes
    labels = np.repeat(np.arange(10), [5, 100, 5, 100, 5, 100, 5, 100, 5, 100])
    sizes = np.bincount(labels)
    variances = np.arange(1.0, 11.0)
    sel = select_low_variance(labels, sizes, variances, p=30, over="clusters")
    # 70th percentile of 1..10 is 7.3: clusters with variance 1..7 (indices 0..6) are kept
    assert sel.accepted.tolist() == [True] * 7 + [False] * 3
    assert sel.threshold == pytest.approx(np.percentile(variances, 70))
    assert np.array_equal(sel.selected, np.flatnonzero(labels < 7))
    assert not sel.fallback


def test_percentile_over_samples_covers_at_least_the_share_of_rows():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    sizes = np.bincount(labels)
    variances = np.array([1.0, 2.0, 3.0, 4.0])
    sel = select_low_variance(labels, sizes, variances, p=30, over="samples")
    # 70 of 100 rows wanted: cluster 0 (50) is not enough, cluster 1 crosses the line and is kept
    assert sel.accepted.tolist() == [True, True, False, False]
    sel = select_low_variance(labels, sizes, variances, p=20, over="samples")
    assert sel.accepted.tolist() == [True, True, False, False]  # exactly 80 rows: no more needed
    sel = select_low_variance(labels, sizes, variances[::-1].copy(), p=90, over="samples")
    assert sel.accepted.tolist() == [False, False, True, True]  # lowest variance first: 5 rows, then 20 >= 10


def test_noise_is_never_selected_and_tiny_sets_fall_back():
    labels = np.array([-1] * 50 + [0] * 2 + [1] * 48)
    sizes = np.array([2, 48])
    variances = np.array([0.1, 5.0])
    sel = select_low_variance(labels, sizes, variances, p=60, over="clusters", min_fraction=0.2)
    assert sel.fallback
    assert set(sel.selected) == set(range(50, 100))  # both clusters, never the noise
    assert (labels[sel.selected] >= 0).all()


def test_select_on_data_prefers_tight_clusters():
    rng = np.random.default_rng(1)
    tight = rng.normal(0, 0.1, size=(300, 2))
    loose = rng.normal(5, 3.0, size=(100, 2))
    Z = np.vstack([tight, loose])
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    sel = select(Z, labels, p=40)
    assert np.array_equal(sel.selected, np.arange(300))


def test_n_changed_counts_symmetric_difference():
    assert n_changed(np.array([1, 2, 3]), np.array([2, 3, 4, 5])) == 3
    assert n_changed(np.array([1, 2]), np.array([1, 2])) == 0


def test_percentile_over_clusters_keeps_the_cluster_at_the_threshold():
    # 11 clusters with variances 1..11: the 70th percentile is exactly 8.0, cluster 7's variance,
    # and "variance <= threshold" keeps it (a strict "<" would drop it)
    labels = np.repeat(np.arange(11), 10)
    variances = np.arange(1.0, 12.0)
    sel = select_low_variance(labels, np.bincount(labels), variances, p=30, over="clusters", min_fraction=0.0)
    assert sel.threshold == 8.0
    assert sel.accepted.tolist() == [True] * 8 + [False] * 3
    np.testing.assert_array_equal(sel.selected, np.arange(80))


def test_percentile_over_samples_stops_at_the_cluster_that_reaches_the_target():
    # the target (100 - p) % of 100 rows = 60 is reached exactly by clusters 0 and 1: cluster 2 stays out
    labels = np.repeat(np.arange(3), [30, 30, 40])
    sel = select_low_variance(labels, np.bincount(labels), np.array([1.0, 2.0, 3.0]), p=40, over="samples", min_fraction=0.0)
    assert sel.accepted.tolist() == [True, True, False] and sel.threshold == 2.0 and not sel.fallback
    # one row short of the target: the crossing cluster is kept (coverage first)
    sel = select_low_variance(labels, np.bincount(labels), np.array([1.0, 2.0, 3.0]), p=39, over="samples", min_fraction=0.0)
    assert sel.accepted.tolist() == [True, True, True]


def test_returned_selection_carries_the_inputs_and_a_boolean_fallback():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    sizes, variances = np.bincount(labels), np.array([1.0, 2.0, 3.0])
    sel = select_low_variance(labels, sizes, variances, p=30, over="samples", min_fraction=0.01)
    np.testing.assert_array_equal(sel.labels, labels)
    np.testing.assert_array_equal(sel.sizes, sizes)
    np.testing.assert_array_equal(sel.variances, variances)
    assert sel.fallback is False and sel.threshold == 2.0


def test_samples_target_is_a_share_of_all_rows():
    # 1,000 rows, p = 40: 600 wanted; clusters 0 and 1 cover 597, so cluster 2 is needed too
    labels = np.repeat(np.arange(3), [300, 297, 403])
    sel = select_low_variance(labels, np.bincount(labels), np.array([1.0, 2.0, 3.0]), p=40, over="samples", min_fraction=0.0)
    assert sel.accepted.tolist() == [True, True, True]


def test_empty_clusters_are_never_present():
    # cluster 1 is empty (its variance 0 would otherwise rank it first); cluster 3 has a single row
    labels = np.array([0] * 40 + [2] * 30 + [3] * 1 + [4] * 29)
    sizes = np.bincount(labels, minlength=5)
    variances = np.array([1.0, 0.0, 2.0, 3.0, 4.0])
    sel = select_low_variance(labels, sizes, variances, p=50, over="clusters", min_fraction=0.0)
    assert sel.threshold == pytest.approx(np.percentile([1.0, 2.0, 3.0, 4.0], 50))  # over the 4 non-empty clusters
    assert sel.accepted.tolist() == [True, False, True, False, False]
    sel = select_low_variance(labels, sizes, variances, p=70, over="samples", min_fraction=0.0)
    assert sel.accepted.tolist() == [True, False, False, False, False] and sel.threshold == 1.0


def test_fallback_adds_clusters_in_increasing_variance_until_min_fraction():
    labels = np.repeat(np.arange(4), [2, 3, 50, 45])
    sizes, variances = np.bincount(labels), np.array([0.1, 0.2, 5.0, 6.0])
    # the clusters rule keeps cluster 0 only (2 rows); 5 % of 100 rows are wanted: cluster 1 completes them
    sel = select_low_variance(labels, sizes, variances, p=74, over="clusters", min_fraction=0.05)
    assert sel.fallback is True and sel.accepted.tolist() == [True, True, False, False] and sel.threshold == 0.2
    # exactly min_fraction kept is enough: no fallback
    sel = select_low_variance(labels, sizes, variances, p=60, over="clusters", min_fraction=0.05)
    assert sel.fallback is False and sel.accepted.tolist() == [True, True, False, False]
    # and at least 2 rows, even when min_fraction asks for fewer: 2 rows are enough
    sel = select_low_variance(labels, sizes, variances, p=74, over="clusters", min_fraction=0.0)
    assert sel.fallback is False and sel.accepted.tolist() == [True, False, False, False]


def test_p_just_above_zero_is_valid_and_errors_name_the_problem():
    labels = np.repeat(np.arange(2), 10)
    sel = select_low_variance(labels, np.bincount(labels), np.array([1.0, 2.0]), p=0.5, over="samples")
    assert sel.accepted.tolist() == [True, True]
    with pytest.raises(ValueError, match=r"^no row belongs to any cluster \(all rows are noise\)$"):
        select_low_variance(np.full(5, -1), np.zeros(2, int), np.array([1.0, 2.0]), p=30)
    with pytest.raises(ValueError, match=r"^no row belongs to any cluster \(all rows are noise\)$"):
        select(np.zeros((5, 2)), np.full(5, -1), p=30)


def test_a_single_cluster_is_a_valid_clustering():
    Z = np.random.default_rng(0).normal(size=(20, 2))
    sel = select(Z, np.zeros(20, int), p=30, over="samples", min_fraction=0.0)
    assert sel.sizes.tolist() == [20] and sel.selected.tolist() == list(range(20))


def test_equal_variances_are_taken_in_cluster_order():
    # 20 clusters of 5 rows, all with the same variance: the first ones (by label) are kept
    labels = np.repeat(np.arange(20), 5)
    sel = select_low_variance(labels, np.bincount(labels), np.ones(20), p=50, over="samples", min_fraction=0.0)
    assert sel.accepted.tolist() == [True] * 10 + [False] * 10


def test_select_counts_every_cluster_up_to_the_largest_label():
    # label 0 exists; the largest label sets the number of clusters (here 3, cluster 1 empty)
    Z = np.r_[np.zeros(10), np.full(10, 5.0) + np.linspace(0, 1, 10)][:, None]
    labels = np.r_[np.zeros(10, int), np.full(10, 2)]
    sel = select(Z, labels, p=40, over="samples", min_fraction=0.0)
    assert len(sel.sizes) == 3 and sel.sizes.tolist() == [10, 0, 10] and np.isinf(sel.variances[1])
    assert sel.accepted.tolist() == [True, False, True]  # 60 % wanted: cluster 0 (50 %) then cluster 2
    # min_fraction reaches the rule: 90 % of 20 rows asked for, the one tight cluster is not enough
    sel = select(Z, labels, p=99, over="samples", min_fraction=0.9)
    assert sel.fallback is True and sel.accepted.tolist() == [True, False, True]


def test_cluster_variances_over_several_chunks_and_from_the_first_row(monkeypatch):
    import deepuad.estimators.selection as selection

    monkeypatch.setattr(selection, "_CHUNK", 7)  # many chunks on small data
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(50, 2))
    labels = rng.integers(0, 3, size=50)
    labels[0] = 1  # the first row counts
    sizes, variances = cluster_variances(Z, labels, 4)  # cluster 3 is empty
    for k in range(3):
        members = Z[labels == k]
        assert sizes[k] == len(members)
        assert variances[k] == pytest.approx(((members - members.mean(0)) ** 2).sum(1).mean())
    assert sizes[3] == 0 and np.isinf(variances[3])
    one = cluster_variances(np.array([[1.0], [3.0]]), np.array([0, 1]), 2)[1]
    assert one.tolist() == [0.0, 0.0]  # a one-row cluster has no spread (and is present)
