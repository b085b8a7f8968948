"""k-means as scikit-learn's ``KMeans(n_clusters, n_init=1, random_state=seed)`` computes it, in
NumPy: k-means++ seeding with greedy local trials, then Lloyd iterations. It initialises the
Gaussian mixture (mixture.py), as scikit-learn's GaussianMixture initialises with its KMeans.

Why ours: importing scikit-learn is slow (it brings scipy.stats, and pandas where installed), and
``cluster`` and ``train`` need nothing else of it.

The steps are scikit-learn 1.9's, one for one, so the labels are scikit-learn's up to rounding
(tests/test_estimators_kmeans.py compares them): the data centred on its mean, the tolerance scaled by its
mean variance, the same ``RandomState`` draws in the same order, the same distance formula
(||c||^2 - 2 x.c, ||x||^2 left out of the argmin), the first centre wins a tie, centres summed in
row order (scikit-learn's order on one thread), empty clusters refilled with the rows farthest
from their centres, and a last assignment when the loop stopped on the tolerance.
"""

from __future__ import annotations

import numpy as np

_ASSIGN_CHUNK = 65536  # rows per distance product: bounds the (rows x clusters) matrix


def kmeans(X, n_clusters: int, random_state: int | None = None, max_iter: int = 300, tol: float = 1e-4):
    """(labels int32, centres float64 (n_clusters, d), iterations run) of k-means on X."""
    X = np.array(X, dtype=np.float64, order="C")  # a copy: centred in place below
    if not 1 <= n_clusters <= len(X):
        raise ValueError(f"k-means needs 1 to {len(X)} clusters for {len(X)} rows, got {n_clusters}")
    tol = float(np.mean(np.var(X, axis=0))) * tol
    mean = X.mean(axis=0)
    X -= mean  # scikit-learn centres the data: more accurate distances
    row_norms = np.einsum("ij,ij->i", X, X)
    centers = _plus_plus(X, n_clusters, row_norms, np.random.RandomState(random_state))
    labels, centers, n_iter = _lloyd(X, centers, max_iter, tol)
    return labels, centers + mean, n_iter


def _plus_plus(X: np.ndarray, n_clusters: int, row_norms: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """k-means++: each next centre is the best of 2 + log(k) rows drawn with probability
    proportional to their squared distance from the centres so far (the one that lowers the
    total most). Shapes and products as scikit-learn's, so the draws land on the same rows."""
    weights = np.ones(len(X))
    trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, X.shape[1]))
    first = rng.choice(len(X), p=weights / weights.sum())
    centers[0] = X[first]
    closest = _squared_distances(X[[first]], X, row_norms)  # (1, rows)
    potential = closest @ weights
    for c in range(1, n_clusters):
        draws = rng.uniform(size=trials) * potential
        candidates = np.searchsorted(np.cumsum(weights * closest), draws)
        np.clip(candidates, None, closest.size - 1, out=candidates)  # rounding can land past the end
        to_candidates = _squared_distances(X[candidates], X, row_norms)
        np.minimum(closest, to_candidates, out=to_candidates)
        potentials = to_candidates @ weights.reshape(-1, 1)
        best = int(np.argmin(potentials))
        potential, closest = potentials[best], to_candidates[best]
        centers[c] = X[candidates[best]]
    return centers


def _squared_distances(A: np.ndarray, X: np.ndarray, row_norms: np.ndarray) -> np.ndarray:
    """||a - x||^2 for every row of A and X, clipped at 0, as scikit-learn's euclidean_distances."""
    distances = -2 * (A @ X.T)
    distances += np.einsum("ij,ij->i", A, A)[:, None]
    distances += row_norms[None, :]
    return np.maximum(distances, 0, out=distances)


def assign(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """The nearest centre of every row (the first on a tie)."""
    center_norms = np.einsum("ij,ij->i", centers, centers)
    labels = np.empty(len(X), dtype=np.int32)
    for start in range(0, len(X), _ASSIGN_CHUNK):
        distances = X[start : start + _ASSIGN_CHUNK] @ centers.T
        distances *= -2.0  # exact: scikit-learn's gemm adds -2 x.c to ||c||^2 with the same rounding
        distances += center_norms
        labels[start : start + _ASSIGN_CHUNK] = distances.argmin(axis=1)
    return labels


def _lloyd(X: np.ndarray, centers: np.ndarray, max_iter: int, tol: float):
    """Lloyd's iterations until the labels repeat or the centres move less than ``tol`` in total."""
    n_clusters = len(centers)
    labels = np.full(len(X), -1, dtype=np.int32)
    # the centres' sums add up each column per cluster (np.bincount, in row order): a contiguous
    # column is read far faster than a strided one (a second copy of X, as scikit-learn's own)
    columns = np.ascontiguousarray(X.T)
    converged_strictly = False
    for n_iter in range(1, max_iter + 1):
        previous = labels
        labels = assign(X, centers)
        # per cluster, its rows summed in row order (bincount adds one by one, as scikit-learn's loop)
        sums = np.stack([np.bincount(labels, weights=column, minlength=n_clusters) for column in columns], axis=1)
        counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
        _refill_empty(X, centers, sums, counts, labels)
        new_centers = _average(sums, counts)
        shift = float((np.sqrt(((new_centers - centers) ** 2).sum(axis=1)) ** 2).sum())
        centers = new_centers
        if np.array_equal(labels, previous):
            converged_strictly = True
            break
        if shift <= tol:
            break
    if not converged_strictly:  # the labels of the centres returned
        labels = assign(X, centers)
    return labels, centers, n_iter


def _refill_empty(X: np.ndarray, centers: np.ndarray, sums: np.ndarray, counts: np.ndarray, labels: np.ndarray) -> None:
    """Give each empty cluster one of the rows farthest from their centres (scikit-learn's rule:
    the row's label is left as it is until the next assignment)."""
    empty = np.flatnonzero(counts == 0)
    if len(empty) == 0:
        return
    distances = ((X - centers[labels]) ** 2).sum(axis=1)
    if distances.max() == 0:  # more clusters than distinct rows: nothing to move
        return
    farthest = np.argpartition(distances, -len(empty))[: -len(empty) - 1 : -1]
    for cluster, row in zip(empty, farthest):
        sums[labels[row]] -= X[row]
        sums[cluster] = X[row]
        counts[cluster] = 1.0
        counts[labels[row]] -= 1.0


def _average(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Means from sums, multiplied by the reciprocal as scikit-learn does; a cluster still empty
    sits on the largest (scaled first when it comes earlier in the order, as there)."""
    centers = sums.copy()
    largest = int(np.argmax(counts))
    for j in range(len(centers)):
        if counts[j] > 0:
            centers[j] *= 1.0 / counts[j]
        else:
            centers[j] = centers[largest]
    return centers
