"""``baseline``: a baseline detector (Isolation Forest, OC-SVM, a plain autoencoder, DAGMM) fitted
on one features artifact and scored on another -> a scores artifact like ``score``'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts.features import read_features
from deepuad.artifacts.scores import write_scores
from deepuad.errors import DataError, ParamError, StaleError
from deepuad.estimators.params import ACTIVATIONS, BASELINE_DEFAULTS, BASELINE_EPOCHS, DEFAULTS, check_params
from deepuad.stages._common import default_output, no_progress, Progress, resolve_device, set_threads
from deepuad.stages.defaults import DEVICE


def baseline(
    features_path,
    method=BASELINE_DEFAULTS["method"],
    score_features=None,
    output=None,
    contamination=BASELINE_DEFAULTS["contamination"],
    seed=DEFAULTS["seed"],
    epochs=None,
    batch_size=BASELINE_DEFAULTS["batch_size"],
    lr=None,
    layers=BASELINE_DEFAULTS["layers"],
    activation=DEFAULTS["activation"],
    max_train_samples=BASELINE_DEFAULTS["max_train_samples"],
    device=DEVICE,
    threads=None,
    progress: Progress = no_progress,
) -> dict:
    """Fit a baseline detector on one features file, score another (default: the same) and write
    a scores artifact in the same schema as ``score``, so evaluate and plots work on it."""
    from deepuad.estimators.baselines import BASELINES

    if method not in BASELINES:
        raise ParamError("method", f"must be one of {', '.join(BASELINES)}, got {method!r}")
    if method in ("ae", "dagmm") and batch_size < 1:
        raise ParamError("batch_size", f"must be >= 1, got {batch_size}")
    if method == "ae" and activation not in ACTIVATIONS:
        raise ParamError("activation", f"must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    check_params({"seed": seed})  # the baselines take any seed NumPy takes; the stage takes DeepUAD's
    options: dict = {"contamination": contamination, "random_state": seed}
    if method in ("ae", "dagmm"):
        options.update(batch_size=batch_size, device="cpu")  # resolved below, after the checks (no GPU: exit 7)
        options["epochs"] = epochs if epochs is not None else BASELINE_EPOCHS[method]
        if lr is not None:
            options["lr"] = lr
    if method == "ae":
        options.update(layers=tuple(layers), activation=activation)
    if method == "ocsvm":
        options["max_train_samples"] = max_train_samples
    detector = _checked(method, options)  # first, as every option check: exit 2 even if the output or device is wrong too
    score_features = score_features or features_path
    output = art.check_output_path(output or default_output(score_features, f"{method}.scores"), [features_path, score_features])
    set_threads(threads)
    if "device" in options:
        options["device"] = resolve_device(device)
        detector.set_params(device=options["device"])
    train = read_features(features_path)
    target = train if Path(score_features) == Path(features_path) else read_features(score_features)
    if target["encoding_fingerprint"] != train["encoding_fingerprint"]:
        raise StaleError(f"is encoded differently from {features_path}; use extract `like`", score_features)
    progress(f"fitting {method}", 0, 1)
    try:
        detector.fit(train["X"])
    except ValueError as error:
        raise DataError(f"{method} failed: {error}", features_path) from None
    progress(f"fitting {method}", 1, 1)
    scores = np.asarray(detector.decision_function(target["X"]), dtype=np.float32)
    params = {"method": method, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}}
    inputs = {"features": {"path": str(score_features), "fingerprint": target["fingerprint"]},
              "train_features": {"path": str(features_path), "fingerprint": train["fingerprint"]}}
    # the detector's own threshold (its contamination quantile of the *training* scores), not one
    # recomputed on the scored rows
    summary = write_scores(output, params, inputs, len(scores), [(0, scores)], target["y"], contamination,
                           float(detector.threshold_))
    return {"output": summary.pop("output"), "method": method, **summary}


def _checked(method: str, options: dict):
    """The baseline detector with ``options``, its parameters checked by its own constraints
    (ParamError, naming the stage's parameter: ``seed`` for the baselines' ``random_state``)."""
    from deepuad.estimators.baselines import BASELINES

    detector = BASELINES[method](**options)
    try:
        detector.check_params()
    except ParamError as error:
        name = "seed" if error.name == "random_state" else error.name
        raise ParamError(name, error.problem, error.constraints, error.value) from None
    return detector
