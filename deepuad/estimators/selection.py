"""Training-set selection C(X, p): keep the members of low-variance clusters.

The paper (Sec. 3): "we compute the threshold as the (100 - p0)th percentile of cluster
variance, and accept clusters with variance smaller than this threshold". Two readings:

* ``over="clusters"`` (the paper's words): the percentile is taken over the K cluster
  variances, so about (100 - p)% of the *clusters* are kept, whatever their sizes.
* ``over="samples"``: clusters are taken in increasing variance until they cover at least
  (100 - p)% of the *rows*; the cluster that crosses that line is kept. Coverage first: leaving
  the crossing cluster out can drop a whole normal mode.

Cluster variance is the mean squared Euclidean distance of a cluster's members to their
centroid (the trace of the cluster's covariance). Rows labelled -1 (noise, "unclustered")
are never selected and do not count as a cluster.

If the rule keeps fewer than ``min_fraction`` of the rows (or nothing), clusters are added in
increasing variance until that share is reached, and ``fallback`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from deepuad.estimators.params import CLUSTERING_DEFAULTS, DEFAULTS

_CHUNK = 65536  # rows per pass: keeps the temporary (chunk x features) arrays small


@dataclass
class Selection:
    """Result of one selection: which clusters and rows were kept, and why."""

    labels: np.ndarray  # (N,) int64 cluster of each row, -1 = noise
    sizes: np.ndarray  # (K,) int64 rows per cluster
    variances: np.ndarray  # (K,) float64 mean squared distance to the centroid
    threshold: float  # variance cut-off actually applied (clusters with variance <= it are kept)
    accepted: np.ndarray  # (K,) bool, cluster kept
    selected: np.ndarray  # sorted int64 indices of the selected rows
    fallback: bool  # True when the min_fraction guard had to add clusters
    extra: dict | None = None  # method-specific results worth storing (e.g. distribution clustering's mu, s2)


def cluster_variances(Z: np.ndarray, labels: np.ndarray, n_clusters: int):
    """Per-cluster sizes and mean squared distances to the centroid (two chunked passes)."""
    labels = np.asarray(labels, dtype=np.int64)
    d = Z.shape[1]
    sums = np.zeros((n_clusters, d), dtype=np.float64)
    sizes = np.zeros(n_clusters, dtype=np.int64)
    for start in range(0, len(Z), _CHUNK):
        z = np.asarray(Z[start : start + _CHUNK], dtype=np.float64)
        lab = labels[start : start + _CHUNK]
        keep = lab >= 0
        np.add.at(sums, lab[keep], z[keep])
        sizes += np.bincount(lab[keep], minlength=n_clusters)
    centroids = sums / np.maximum(sizes, 1)[:, None]
    sq_dist_sums = np.zeros(n_clusters, dtype=np.float64)
    for start in range(0, len(Z), _CHUNK):
        z = np.asarray(Z[start : start + _CHUNK], dtype=np.float64)
        lab = labels[start : start + _CHUNK]
        keep = lab >= 0
        sq = ((z[keep] - centroids[lab[keep]]) ** 2).sum(axis=1)
        sq_dist_sums += np.bincount(lab[keep], weights=sq, minlength=n_clusters)
    variances = np.where(sizes > 0, sq_dist_sums / np.maximum(sizes, 1), np.inf)
    return sizes, variances


def select_low_variance(
    labels: np.ndarray,
    sizes: np.ndarray,
    variances: np.ndarray,
    p: float,
    over: str = "clusters",
    min_fraction: float = DEFAULTS["min_fraction"],
) -> Selection:
    """Apply the percentile rule with threshold p (in percent, 0 < p < 100; the caller has checked
    it and ``over``, as DeepUAD.fit and the cluster stage do)."""
    labels = np.asarray(labels, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    variances = np.asarray(variances, dtype=np.float64)
    n_rows = len(labels)
    present = sizes > 0
    if not present.any():
        raise ValueError("no row belongs to any cluster (all rows are noise)")
    order = np.argsort(np.where(present, variances, np.inf), kind="stable")  # low variance first
    order = order[present[order]]

    if over == "clusters":
        threshold = float(np.percentile(variances[present], 100 - p))
        accepted = present & (variances <= threshold)
    else:
        target = (100 - p) / 100 * n_rows
        cumulative = np.cumsum(sizes[order])
        # the first clusters whose sizes add up to at least the target (coverage first)
        n_keep = min(len(order), int(np.searchsorted(cumulative, target, side="left")) + 1)
        accepted = np.zeros(len(sizes), dtype=bool)
        accepted[order[:n_keep]] = True
        threshold = float(variances[order[n_keep - 1]])

    min_rows = max(2, math.ceil(min_fraction * n_rows))
    fallback = False
    if sizes[accepted].sum() < min(min_rows, sizes[present].sum()):
        fallback = True
        cumulative = np.cumsum(sizes[order])
        n_keep = int(np.searchsorted(cumulative, min_rows, side="left")) + 1
        accepted = np.zeros(len(sizes), dtype=bool)
        accepted[order[:n_keep]] = True
        threshold = float(variances[order[min(n_keep, len(order)) - 1]])

    selected = np.flatnonzero((labels >= 0) & accepted[np.maximum(labels, 0)])
    return Selection(labels, sizes, variances, threshold, accepted, selected.astype(np.int64), fallback)


def select(Z: np.ndarray, labels: np.ndarray, p: float, over: str = "clusters", min_fraction: float = DEFAULTS["min_fraction"]):
    """C(Z, p): variances of the clusters in ``labels`` measured in the space ``Z``, then the rule."""
    labels = np.asarray(labels, dtype=np.int64)
    n_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
    if n_clusters == 0:
        raise ValueError("no row belongs to any cluster (all rows are noise)")
    sizes, variances = cluster_variances(Z, labels, n_clusters)
    return select_low_variance(labels, sizes, variances, p, over=over, min_fraction=min_fraction)


def n_changed(old: np.ndarray, new: np.ndarray) -> int:
    """How many indices entered or left the selection (size of the symmetric difference)."""
    return int(len(np.setxor1d(old, new, assume_unique=True)))


def initial_selection(
    X: np.ndarray,
    p0: float = DEFAULTS["p0"],
    init_method: str = DEFAULTS["init_method"],
    init_clusters: int = DEFAULTS["init_clusters"],
    percentile_over: str = DEFAULTS["percentile_over"],
    min_fraction: float = DEFAULTS["min_fraction"],
    seed: int = DEFAULTS["seed"],
    init_by: str = DEFAULTS["init_by"],
    trim_cutoff: float = DEFAULTS["trim_cutoff"],
    cluster_cutoff: float | None = DEFAULTS["cluster_cutoff"],
    **method_options,
) -> Selection:
    """C(X, p0): cluster the input features with ``init_method`` and keep the low-variance clusters,
    then apply the initial rule ``init_by`` (rules.INITIAL: ``"variance"``, the paper's, keeps them;
    ``"trim"`` keeps the rows and clusters that do not stand out, cleaning.py). The parameters are
    DeepUAD's (params.PARAMS), checked by the caller; ``method_options`` are the method's own
    (params.METHOD_OPTIONS)."""
    from deepuad.estimators.clustering import cluster_labels  # imported only by the stages that cluster
    from deepuad.estimators.rules import INITIAL

    if init_method == "gmm":
        method_options.setdefault("covariance_type", CLUSTERING_DEFAULTS["covariance_type"])
        method_options.setdefault("reg_covar", CLUSTERING_DEFAULTS["reg_covar"])
    labels, extra = cluster_labels(init_method, X, init_clusters, seed, **method_options)
    if "variances" in extra:  # the method measured spread in its own geometry
        sizes = np.bincount(labels[labels >= 0], minlength=len(extra["variances"]))
        selection = select_low_variance(labels, sizes, extra["variances"], p0, over=percentile_over, min_fraction=min_fraction)
    else:
        selection = select(X, labels, p0, over=percentile_over, min_fraction=min_fraction)
    selection.extra = extra
    params = SimpleNamespace(p0=p0, init_method=init_method, init_clusters=init_clusters, percentile_over=percentile_over,
                             min_fraction=min_fraction, seed=seed, trim_cutoff=trim_cutoff, cluster_cutoff=cluster_cutoff)
    return INITIAL[init_by]().choose(X, selection, params)
