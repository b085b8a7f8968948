"""Our k-means (the Gaussian mixture's initialisation) is scikit-learn's KMeans(n_init=1): the
same labels and centres, on generated data and on real sets, including the rare paths (an
empty cluster refilled, more clusters than distinct rows, ties on duplicated one-hot rows)."""

import numpy as np
import pytest
from sklearn.cluster import KMeans

from deepuad.estimators.kmeans import _lloyd, kmeans


def assert_like_scikit_learn(X, n_clusters, seed):
    reference = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit(X)
    labels, centers, n_iter = kmeans(X, n_clusters, seed)
    np.testing.assert_array_equal(labels, reference.labels_)
    np.testing.assert_allclose(centers, reference.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert n_iter == reference.n_iter_
    assert labels.dtype == np.int32


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_gaussian_blobs(seed):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(loc, 0.5, size=(150, 4)) for loc in rng.uniform(-5, 5, size=(6, 4))])
    assert_like_scikit_learn(X, 6, seed)
    assert_like_scikit_learn(X, 20, seed)  # more clusters than blobs: many centres split blobs


def test_one_hot_rows_with_ties():
    # one-hot columns: many rows are copies and sit at equal distances from several centres
    rng = np.random.default_rng(3)
    X = np.concatenate([np.eye(5)[rng.integers(0, 5, 400)], rng.integers(0, 2, size=(400, 3))], axis=1).astype(float)
    for seed in range(4):
        assert_like_scikit_learn(X, 8, seed)


def test_as_many_clusters_as_rows_and_duplicates():
    # 12 distinct rows, each 5 times: with 20 clusters some stay empty (scikit-learn leaves them
    # on the largest cluster's centre, nothing can be moved); with 12 every distinct row is one
    X = np.repeat(np.random.default_rng(0).normal(size=(12, 3)), 5, axis=0)
    assert_like_scikit_learn(X, 20, 0)
    assert_like_scikit_learn(X, 12, 0)
    assert_like_scikit_learn(X[:12 * 5 : 5], 12, 0)  # k = rows


def test_empty_cluster_is_refilled():
    # k-means++ never seeds a centre without rows, so start Lloyd from given centres, one far from
    # every row: its cluster is empty at once and takes the row farthest from its centre, as in
    # scikit-learn's KMeans(init=centres)
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(0, 1, size=(300, 2)), rng.normal(6, 0.5, size=(40, 2))])
    start = np.array([[0.0, 0.0], [6.0, 6.0], [100.0, -100.0], [1.0, 1.0]])
    reference = KMeans(n_clusters=4, init=start, n_init=1).fit(X)
    mean = X.mean(axis=0)
    tol = float(np.mean(np.var(X, axis=0))) * 1e-4
    labels, centers, n_iter = _lloyd(X - mean, start - mean, 300, tol)
    np.testing.assert_array_equal(labels, reference.labels_)
    np.testing.assert_allclose(centers + mean, reference.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert (np.bincount(labels, minlength=4) > 0).all()  # the far centre was moved onto the data


def test_refuses_more_clusters_than_rows():
    with pytest.raises(ValueError, match="clusters"):
        kmeans(np.zeros((3, 2)), 4, 0)


@pytest.mark.parametrize("name", ["4_breastw", "42_WBC", "6_cardio", "35_SpamBase"])
def test_real_sets(name, shared_data):
    X = np.load(shared_data / "odds_adbench" / f"{name}.npz")["X"].astype(np.float64)
    low, high = X.min(axis=0), X.max(axis=0)
    X = (X - low) / np.where(high > low, high - low, 1.0)
    for seed in (0, 1):
        assert_like_scikit_learn(X, 20, seed)
