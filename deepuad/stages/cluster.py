"""``cluster``: the initial clustering and selection C(X, p0) -> a clusters artifact."""

from __future__ import annotations

import warnings

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import clusters as clusters_artifact
from deepuad.artifacts.features import features_for_clustering
from deepuad.errors import DataError, UsageError
from deepuad.stages._common import default_output, existing_artifact_matches, no_progress, Progress, skipped


def cluster(
    features_path,
    output=None,
    method="gmm",
    n_clusters=20,
    p0=35.0,
    percentile_over="samples",
    min_fraction=0.01,
    seed=0,
    method_options: dict | None = None,
    skip_current=False,
    progress: Progress = no_progress,
) -> dict:
    """Initial clustering and selection C(X, p0) -> clusters artifact."""
    from deepuad.estimators.clustering import METHODS
    from deepuad.estimators.selection import initial_selection

    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < p0 < 100:
        raise UsageError(f"--p0 must be in (0, 100), got {p0}")
    if n_clusters < 1:
        raise UsageError(f"--clusters must be >= 1, got {n_clusters}")
    _check_cluster_options(percentile_over, min_fraction, seed, method, method_options or {})
    output = art.check_output_path(output or default_output(features_path, "clusters"), [features_path])
    options = {k: v for k, v in (method_options or {}).items() if v is not None}
    params = {"method": method, "n_clusters": n_clusters, "p0": p0, "percentile_over": percentile_over,
              "min_fraction": min_fraction, "seed": seed, "method_options": options}
    if skip_current:
        inputs = {"features": {"path": str(features_path), "fingerprint": art.fingerprint_of(features_path)}}
        if existing_artifact_matches(output, "clusters", params, inputs):
            return skipped(output)
    progress(f"clustering ({method})", 0, 1)
    with features_for_clustering(features_path, streaming=bool(options.get("fit_sample")) and method in ("gmm", "kmeans")) as features:
        X, y = features["X"], features["y"]
        if len(X) < 2:  # else scikit-learn's "Found array with 1 sample(s)" as the reason
            raise DataError(f"has {len(X)} row; clustering needs at least 2", features_path)
        try:
            selection = initial_selection(X, p0, method, n_clusters, percentile_over, min_fraction, seed, **options)
        except ValueError as error:
            raise DataError(f"clustering failed: {error}", features_path) from None
        n_rows = len(X)
    progress(f"clustering ({method})", 1, 1)
    if not np.isfinite(selection.threshold) or not np.isfinite(selection.variances[selection.sizes > 0]).all():
        raise DataError(f"clustering gave a variance threshold of {selection.threshold} (values too large?)", features_path)
    if selection.fallback:
        warnings.warn(
            f"the p0 rule selected fewer than {min_fraction:.0%} of the rows; added clusters in increasing variance "
            f"up to {len(selection.selected)} rows (recorded as fallback)"
        )
    inputs = {"features": {"path": str(features_path), "fingerprint": features["fingerprint"]}}
    clusters_artifact.write(output, selection, params, inputs, n_rows, method, y)
    summary = {
        "output": str(output), "method": method, "rows": n_rows, "clusters": int((selection.sizes > 0).sum()),
        "accepted_clusters": int(selection.accepted.sum()), "selected": len(selection.selected),
        "threshold": selection.threshold, "fallback": selection.fallback,
        "unclustered": int((selection.labels < 0).sum()),
    }
    if "thres" in (selection.extra or {}):
        summary["thres"] = selection.extra["thres"]
    if y is not None:
        summary["selected_anomaly_share"] = float(np.mean(y[selection.selected]))
        summary["data_anomaly_share"] = float(np.mean(y))
    return summary


def _check_cluster_options(percentile_over, min_fraction, seed, method, method_options: dict) -> None:
    """UsageError (exit 2) before any work, instead of a "clustering failed" DataError (exit 4)
    from deep inside scikit-learn, or a silent success with a meaningless value."""
    from deepuad.estimators.selection import PERCENTILE_OVER

    if percentile_over not in PERCENTILE_OVER:
        raise UsageError(f"--percentile-over must be one of {', '.join(PERCENTILE_OVER)}, got {percentile_over!r}")
    if not 0 <= min_fraction < 1:
        raise UsageError(f"--min-fraction must be in [0, 1), got {min_fraction}")
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    covariance = method_options.get("covariance_type")
    if method == "gmm" and covariance is not None and covariance not in ("full", "tied", "diag", "spherical"):
        raise UsageError(f"--covariance must be one of full, tied, diag, spherical, got {covariance!r}")
    fit_sample = method_options.get("fit_sample")
    if fit_sample is not None and fit_sample < 2:
        raise UsageError(f"--fit-sample must be >= 2 rows, got {fit_sample}")
