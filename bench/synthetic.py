"""Anomalies planted among the normal rows of a real set: the panel's `synthetic` and `spikes` families.

The four types follow ADBench (Han et al., "ADBench: Anomaly Detection Benchmark", NeurIPS 2022,
§3.3), each drawn in the raw feature space of the normal rows it joins:

* local: a Gaussian mixture fitted to the normal rows, its covariances scaled by 5 (same means):
  rows near the normal modes but looser than any of them;
* global: every feature uniform within 1.1 x its normal range (the range widened by 10 % about its
  middle): rows scattered over the whole box the normal rows span;
* dependency: every feature drawn on its own from its normal marginal (an independent permutation
  of each column): each value is a normal one, only the joint pattern is new;
* clustered: the same mixture with its means scaled by 5 (same covariances): a tight group of
  anomalies away from the normal modes, the case a method fitted on all rows learns as normal.

The mixture's number of components is the lowest BIC over 1..5 (scikit-learn GaussianMixture,
full covariances, seeded). ``spikes`` is the issue's obvious case: single-column values at 10 x a
column's normal range above its maximum.

Pure NumPy/scikit-learn: every function takes the normal rows and a generator, returns arrays.
"""

from __future__ import annotations

import numpy as np

KINDS = ("local", "global", "dependency", "clustered")
SCALE = 5.0  # ADBench's alpha for local (covariances) and clustered (means) anomalies
GLOBAL_WIDTH = 1.1  # global anomalies: uniform over this multiple of each feature's range
SPIKE_HEIGHT = 10.0  # a spike sits this many column ranges above the column's maximum


def fit_mixture(normal: np.ndarray, seed: int, components=range(1, 6)):
    """The Gaussian mixture of the normal rows with the lowest BIC over ``components``."""
    from sklearn.mixture import GaussianMixture

    fits = [GaussianMixture(n_components=k, covariance_type="full", reg_covar=1e-6, random_state=seed).fit(normal)
            for k in components if k <= len(normal)]
    return min(fits, key=lambda g: g.bic(normal))


def _sample_mixture(weights, means, covariances, n: int, rng: np.random.Generator) -> np.ndarray:
    counts = rng.multinomial(n, weights)
    parts = [rng.multivariate_normal(m, c, size=k, method="eigh") for m, c, k in zip(means, covariances, counts) if k]
    return rng.permutation(np.vstack(parts)) if parts else np.empty((0, means.shape[1]))


def anomalies(normal: np.ndarray, kind: str, n: int, rng: np.random.Generator, seed: int = 0) -> np.ndarray:
    """``n`` anomalies of ``kind`` (one of KINDS) for these normal rows (raw feature space)."""
    if kind == "global":
        low, high = normal.min(axis=0), normal.max(axis=0)
        middle, half = (low + high) / 2, GLOBAL_WIDTH * (high - low) / 2
        return rng.uniform(middle - half, middle + half, size=(n, normal.shape[1]))
    if kind == "dependency":
        return np.column_stack([column[rng.permutation(len(column))[:n]] for column in normal.T])
    if kind in ("local", "clustered"):
        gmm = fit_mixture(normal, seed)
        means, covariances = gmm.means_, gmm.covariances_
        if kind == "local":
            covariances = covariances * SCALE
        else:
            means = means * SCALE
        return _sample_mixture(gmm.weights_, means, covariances, n, rng)
    raise ValueError(f"unknown anomaly type {kind!r} (one of {', '.join(KINDS)})")


def plant(normal: np.ndarray, kind: str, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The normal rows plus anomalies of ``kind`` making up ``share`` of the result (rounded to a
    whole row, at least one), shuffled; labels 1 = planted anomaly. With n normal rows there are
    round(share / (1 - share) * n) anomalies. Dependency anomalies need no more than n rows."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(share / (1 - share) * len(normal))))
    X = np.vstack([normal, anomalies(normal, kind, n, rng, seed)])
    y = np.r_[np.zeros(len(normal), dtype=int), np.ones(n, dtype=int)]
    order = rng.permutation(len(y))
    return X[order], y[order]


def spikes(normal: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of the normal rows, chosen at random, each get ONE column (at random among the
    columns that vary) set to max + SPIKE_HEIGHT x (max - min) of that column's normal values;
    labels 1 = spiked row. Every other value is untouched."""
    rng = np.random.default_rng(seed)
    X = normal.astype(np.float64, copy=True)
    low, high = normal.min(axis=0), normal.max(axis=0)
    varying = np.flatnonzero(high > low)
    rows = rng.choice(len(X), size=count, replace=False)
    columns = rng.choice(varying, size=count)
    X[rows, columns] = high[columns] + SPIKE_HEIGHT * (high[columns] - low[columns])
    y = np.zeros(len(X), dtype=int)
    y[rows] = 1
    return X, y


def spike_recall(scores: np.ndarray, y: np.ndarray, percentile: float = 99.0) -> float:
    """Share of the spiked rows (y == 1) scoring above the ``percentile``-th percentile of the
    untouched rows' scores (the issue's goal: 1.0 on every set)."""
    bar = np.percentile(scores[y == 0], percentile)
    return float(np.mean(scores[y == 1] > bar))


def spikes_missed(scores: np.ndarray, y: np.ndarray, percentile: float = 99.0) -> int:
    """How many spiked rows score at or below that percentile (``spike_recall``'s misses, counted)."""
    bar = np.percentile(scores[y == 0], percentile)
    return int(np.sum(scores[y == 1] <= bar))


def type_and_share(group: str) -> tuple[str, int]:
    """A synthetic group's sort key: "clustered_20" -> ("clustered", 20), so shares sort as numbers."""
    kind, share = group.rsplit("_", 1)
    return kind, int(share)
