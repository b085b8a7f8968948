"""Clustering methods behind ``deepuad cluster --method`` and the re-selection step.

Every method is a function ``labels = fit_labels(X, n_clusters, random_state, **options)``
returning int64 labels with -1 for rows left unclustered (noise). Adding a method means
adding one entry to ``METHODS``; the selection rule, the artifact and the CLI stay as they are.

Large inputs: ``fit_sample`` (where offered) fits on a seeded random subsample and then
assigns every row in chunks, so memory stays bounded by the subsample, not by N.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

_PREDICT_CHUNK = 65536


def _subsample(X: np.ndarray, fit_sample: int | None, random_state: int) -> np.ndarray:
    if fit_sample is None or fit_sample >= len(X):
        return np.asarray(X)
    rows = np.sort(np.random.default_rng(random_state).choice(len(X), size=fit_sample, replace=False))
    return np.asarray(X[rows])


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
) -> GaussianMixture:
    """A GaussianMixture fitted in float64; retries with 10x larger ``reg_covar`` when a
    covariance collapses (one-hot columns make "ill-defined empirical covariance" common)."""
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
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gmm.fit(sample)
            return gmm
        except ValueError as error:  # sklearn raises ValueError for a collapsed covariance
            last_error = error
    raise ValueError(f"GMM failed even with reg_covar={reg_covar * 1000:g}: {last_error}")


def gmm_labels(X, n_clusters=20, random_state=0, covariance_type="full", reg_covar=1e-6, fit_sample=None):
    gmm = fit_gmm(X, n_clusters, random_state, covariance_type, reg_covar, fit_sample=fit_sample)
    return _predict_in_chunks(gmm, X)


def kmeans_labels(X, n_clusters=20, random_state=0, fit_sample=None):
    sample = _subsample(X, fit_sample, random_state).astype(np.float64, copy=False)
    model = KMeans(n_clusters=min(n_clusters, len(sample)), n_init=3, random_state=random_state).fit(sample)
    return _predict_in_chunks(model, X)


# name -> (function, options it accepts from the command line, one-line help)
METHODS = {
    "gmm": (gmm_labels, ("covariance_type", "reg_covar", "fit_sample"), "Gaussian mixture (paper's choice for tabular data)"),
    "kmeans": (kmeans_labels, ("fit_sample",), "k-means (ablation, paper Table 6)"),
}


def cluster_labels(method: str, X: np.ndarray, n_clusters: int, random_state: int, **options) -> np.ndarray:
    """Run ``method`` on X; options not accepted by the method are ignored."""
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}; choose from {', '.join(METHODS)}")
    function, accepted, _ = METHODS[method]
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    labels = np.asarray(function(X, n_clusters=n_clusters, random_state=random_state, **kwargs), dtype=np.int64)
    return labels
