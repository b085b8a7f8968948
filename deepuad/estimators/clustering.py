"""Clustering methods behind ``deepuad cluster --method`` and the re-selection step.

Every method is a function ``fit_labels(X, n_clusters, random_state, **options)`` returning
int64 labels with -1 for rows left unclustered (noise), or ``(labels, extra)`` where ``extra``
may hold ``variances`` (per cluster, when the method measures spread in its own geometry, as
distribution clustering does on unit vectors) and arrays worth storing in the artifact.
Adding a method means adding one entry to ``METHODS``; the selection rule, the artifact and
the CLI stay as they are.

Large inputs: ``fit_sample`` (where offered) fits on a seeded random subsample and then
assigns every row in chunks, so memory stays bounded by the subsample, not by N.
"""

from __future__ import annotations

import numpy as np

from deepuad.estimators.mixture import GaussianMixture, sample_rows  # scikit-learn's EM, every component at once (mixture.py says why)
from deepuad.estimators.params import CLUSTERING_DEFAULTS

_PREDICT_CHUNK = 65536


def _subsample(X: np.ndarray, fit_sample: int | None, random_state: int) -> np.ndarray:
    if fit_sample is None or fit_sample >= len(X):
        return np.asarray(X)
    return np.asarray(X[sample_rows(len(X), fit_sample, random_state)])


def _predict_in_chunks(model, X: np.ndarray) -> np.ndarray:
    out = np.empty(len(X), dtype=np.int64)
    for start in range(0, len(X), _PREDICT_CHUNK):
        out[start : start + _PREDICT_CHUNK] = model.predict(np.asarray(X[start : start + _PREDICT_CHUNK], dtype=np.float64))
    return out


def fit_gmm(
    X: np.ndarray,
    n_clusters: int = 20,
    random_state: int = 0,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    fit_sample: int | None = None,
    init_sample: int | None = CLUSTERING_DEFAULTS["init_sample"],
) -> GaussianMixture:
    """A GaussianMixture (mixture.py) fitted in float64; retries with 10x larger ``reg_covar`` when a
    covariance collapses (one-hot columns make "ill-defined empirical covariance" common).
    ``fit_sample``: EM on that many random rows; ``init_sample``: only its initial k-means."""
    sample = _subsample(X, fit_sample, random_state).astype(np.float64, copy=False)
    n_components = min(n_clusters, len(sample))
    last_error: Exception | None = None
    for attempt in range(4):
        gmm = GaussianMixture(
            n_components=n_components,
            covariance_type=covariance_type,
            reg_covar=reg_covar * 10**attempt,
            max_iter=max_iter,
            random_state=random_state,
            init_sample=init_sample,
        )
        try:
            return gmm.fit(sample)
        except ValueError as error:  # a collapsed covariance
            last_error = error
    raise ValueError(f"GMM failed even with reg_covar={reg_covar * 1000:g}: {last_error}")


def gmm_labels(X, n_clusters=20, random_state=0, covariance_type="full", reg_covar=1e-6, fit_sample=None):
    gmm = fit_gmm(X, n_clusters, random_state, covariance_type, reg_covar, fit_sample=fit_sample)
    return _predict_in_chunks(gmm, X)


def kmeans_labels(X, n_clusters=20, random_state=0, fit_sample=None):
    from sklearn.cluster import KMeans  # scikit-learn is slow to import: only when asked

    sample = _subsample(X, fit_sample, random_state).astype(np.float64, copy=False)
    model = KMeans(n_clusters=min(n_clusters, len(sample)), n_init=3, random_state=random_state).fit(sample)
    return _predict_in_chunks(model, X)


def hdbscan_labels(X, n_clusters=None, random_state=0, min_cluster_size=CLUSTERING_DEFAULTS["min_cluster_size"], fit_sample=None):
    """scikit-learn's HDBSCAN (paper Table 6: minimum cluster size 5); noise is -1 and never
    selected. It has no predict: with ``fit_sample`` the rest of the rows stay noise."""
    from sklearn.cluster import HDBSCAN

    if fit_sample is None or fit_sample >= len(X):
        return HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(np.asarray(X, dtype=np.float64))
    rows = sample_rows(len(X), fit_sample, random_state)
    labels = np.full(len(X), -1, dtype=np.int64)
    labels[rows] = HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(np.asarray(X[rows], dtype=np.float64))
    return labels


def distribution_labels(X, n_clusters=None, random_state=0, thres=CLUSTERING_DEFAULTS["thres"],
                        min_clus=CLUSTERING_DEFAULTS["min_clus"], max_dist=CLUSTERING_DEFAULTS["max_dist"],
                        normalize=CLUSTERING_DEFAULTS["normalize"], n_anchors=CLUSTERING_DEFAULTS["n_anchors"],
                        n_neighbors=CLUSTERING_DEFAULTS["n_neighbors"], sample=None):
    """Distribution clustering (Lin et al., CVPR 2018): finds its own number of clusters and
    leaves outliers unclustered. Cluster variance is its s^2 on the normalised rows.
    ``thres="auto"`` applies the nearest-neighbour profile-distance heuristic."""
    from deepuad.estimators.distribution import DistributionClustering, estimate_thres

    if thres == "auto":
        thres = float(estimate_thres(X, normalize=normalize, random_state=random_state))
    model = DistributionClustering(
        thres=float(thres), min_clus=min_clus, max_dist=max_dist, normalize=normalize, n_anchors=n_anchors,
        n_neighbors=n_neighbors, sample=sample, random_state=random_state,
    ).fit(np.asarray(X, dtype=np.float32))
    extra = {"variances": np.asarray(model.cluster_s2_, dtype=np.float64), "thres": float(thres),
             "mu": model.cluster_mu_, "s2": model.cluster_s2_, "seed_distances": model.seed_distances_}
    return model.labels_, extra


# name -> (function, options it accepts from the command line, one-line help)
METHODS = {
    "gmm": (gmm_labels, ("covariance_type", "reg_covar", "fit_sample"), "Gaussian mixture (paper's choice for tabular data)"),
    "kmeans": (kmeans_labels, ("fit_sample",), "k-means (ablation, paper Table 6)"),
    "hdbscan": (hdbscan_labels, ("min_cluster_size", "fit_sample"), "HDBSCAN (ablation, paper Table 6; noise never selected)"),
    "distribution": (
        distribution_labels,
        ("thres", "min_clus", "max_dist", "normalize", "n_anchors", "n_neighbors", "sample"),
        "distribution clustering (paper's choice for images and video)",
    ),
}


def cluster_labels(method: str, X: np.ndarray, n_clusters: int, random_state: int, **options) -> tuple[np.ndarray, dict]:
    """Run ``method`` on X: (labels, extra). Options the method does not accept are ignored."""
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose from {', '.join(METHODS)}")
    function, accepted, _ = METHODS[method]
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    result = function(X, n_clusters=n_clusters, random_state=random_state, **kwargs)
    labels, extra = result if isinstance(result, tuple) else (result, {})
    return np.asarray(labels, dtype=np.int64), extra
