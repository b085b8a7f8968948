"""``cluster``: the initial clustering and selection C(X, p0) -> a clusters artifact."""

from __future__ import annotations

import warnings

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import clusters as clusters_artifact
from deepuad.artifacts.features import open_features
from deepuad.errors import DataError
from deepuad.estimators.constraints import Interval, Real, check
from deepuad.estimators.params import DEFAULTS, METHOD_SPEC, check_params, record
from deepuad.stages._common import default_output, existing_artifact_matches, no_progress, Progress, skipped

# distribution clustering's seed distance is a squared distance between unit vectors (at most 4)
# unless its rows are not normalised
UNIT_SEED_DISTANCE = (Interval(Real, 0, 4, closed="right"),)


def cluster(
    features_path,
    output=None,
    init_method=DEFAULTS["init_method"],
    init_clusters=DEFAULTS["init_clusters"],
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
    """Initial clustering and selection C(X, p0) -> clusters artifact. The parameters are
    DeepUAD's (params.PARAMS); ``method_options`` the clustering method's (params.METHOD_OPTIONS),
    recorded as given. Every one is checked before any work (ParamError)."""
    from deepuad.estimators.selection import initial_selection

    values = dict(init_method=init_method, init_clusters=init_clusters, p0=p0, percentile_over=percentile_over,
                  min_fraction=min_fraction, seed=seed, init_by=init_by, trim_cutoff=trim_cutoff,
                  cluster_cutoff=cluster_cutoff)
    # distribution clustering's options are recorded only with it (each has a default); the other methods'
    # options, where given, whatever the method
    options = {name: value for name, value in (method_options or {}).items()
               if value is not None and (init_method == "distribution" or METHOD_SPEC[name].methods != ("distribution",))}
    check_params(values)
    check_params({name: value for name, value in options.items() if init_method in METHOD_SPEC[name].methods}, METHOD_SPEC)
    if init_method == "distribution" and options.get("normalize") != "none" and "max_dist" in options:
        check("max_dist", options["max_dist"], UNIT_SEED_DISTANCE)
    output = art.check_output_path(output or default_output(features_path, "clusters"), [features_path])
    params = {**record("clusters", values), "method_options": options}
    if skip_current:
        inputs = {"features": {"path": str(features_path), "fingerprint": art.fingerprint_of(features_path)}}
        if existing_artifact_matches(output, "clusters", params, inputs):
            return skipped(output)
    progress(f"clustering ({init_method})", 0, 1)
    streaming = bool(options.get("fit_sample")) and init_method in ("gmm", "kmeans")
    # streaming: gmm/kmeans with --fit-sample read only their sample and assign every row in
    # chunks, so that data larger than memory can be clustered
    with open_features(features_path, X="disk" if streaming else "memory") as features:
        if streaming:
            features.check_finite(0, features.n_rows)
        X, y = features.X, features.labels()
        if len(X) < 2:  # else scikit-learn's "Found array with 1 sample(s)" as the reason
            raise DataError(f"has {len(X)} row; clustering needs at least 2", features_path)
        try:
            selection = initial_selection(X, p0, init_method, init_clusters, percentile_over, min_fraction, seed, init_by,
                                          trim_cutoff, cluster_cutoff, **options)
        except ValueError as error:
            raise DataError(f"clustering failed: {error}", features_path) from None
        n_rows = len(X)
    progress(f"clustering ({init_method})", 1, 1)
    if not np.isfinite(selection.threshold) or not np.isfinite(selection.variances[selection.sizes > 0]).all():
        raise DataError(f"clustering gave a variance threshold of {selection.threshold} (values too large?)", features_path)
    if selection.fallback:
        warnings.warn(
            f"the p0 rule selected fewer than {min_fraction:.0%} of the rows; added clusters in increasing variance "
            f"up to {len(selection.selected)} rows (recorded as fallback)"
        )
    inputs = {"features": {"path": str(features_path), "fingerprint": features.fingerprint}}
    clusters_artifact.write(output, selection, params, inputs, n_rows, init_method, y)
    summary = {
        "output": str(output), "method": init_method, "rows": n_rows, "clusters": int((selection.sizes > 0).sum()),
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
