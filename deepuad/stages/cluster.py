"""``cluster``: the initial clustering and selection C(X, p0) -> a clusters artifact."""

from __future__ import annotations

import warnings

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import clusters as clusters_artifact
from deepuad.artifacts.features import features_for_clustering
from deepuad.errors import DataError, UsageError
from deepuad.estimators.params import DEFAULTS
from deepuad.stages._common import as_option, default_output, existing_artifact_matches, no_progress, Progress, skipped


def cluster(
    features_path,
    output=None,
    method=DEFAULTS["init_method"],
    n_clusters=DEFAULTS["init_clusters"],
    p0=DEFAULTS["p0"],
    percentile_over=DEFAULTS["percentile_over"],
    min_fraction=DEFAULTS["min_fraction"],
    seed=DEFAULTS["seed"],
    method_options: dict | None = None,
    init_by=DEFAULTS["init_by"],
    trim_cutoff=DEFAULTS["trim_cutoff"],
    cluster_cutoff=DEFAULTS["cluster_cutoff"],
    skip_current=False,
    progress: Progress = no_progress,
) -> dict:
    """Initial clustering and selection C(X, p0) -> clusters artifact."""
    from deepuad.estimators.selection import check_initial_selection, initial_selection

    given = method_options or {}
    try:  # before any work: exit 2, not a "clustering failed" (exit 4) from deep inside scikit-learn
        check_initial_selection(method=method, p0=p0, n_clusters=n_clusters, percentile_over=percentile_over,
                                min_fraction=min_fraction, random_state=seed, fit_sample=given.get("fit_sample"),
                                covariance_type=given.get("covariance_type") if method == "gmm" else None,
                                rule=init_by, trim_cutoff=trim_cutoff, cluster_cutoff=cluster_cutoff)
    except ValueError as error:
        raise UsageError(as_option(str(error))) from None
    output = art.check_output_path(output or default_output(features_path, "clusters"), [features_path])
    options = {k: v for k, v in (method_options or {}).items() if v is not None}
    params = {"method": method, "n_clusters": n_clusters, "p0": p0, "percentile_over": percentile_over,
              "min_fraction": min_fraction, "seed": seed, "method_options": options,
              "init_by": init_by, "trim_cutoff": trim_cutoff, "cluster_cutoff": cluster_cutoff}
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
            selection = initial_selection(X, p0, method, n_clusters, percentile_over, min_fraction, seed, rule=init_by,
                                          trim_cutoff=trim_cutoff, cluster_cutoff=cluster_cutoff, **options)
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
