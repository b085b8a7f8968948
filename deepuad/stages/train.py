"""``train``: Algorithm 1 from the clusters artifact's initial selection -> a model artifact.

A run checkpoints after every re-selection (but the last: the model follows it) into a file
beside its output (``checkpoint_path``: ``m.model.h5`` -> ``m.model.checkpoint.h5``), never
into the output itself, so that a killed retrain leaves the model in use as it was. Only the
finished model replaces the output (atomically), and then the checkpoint is removed.
``--resume`` continues from the checkpoint exactly. Checkpoints and models are written and read
by ``deepuad.artifacts.model``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import clusters as clusters_artifact
from deepuad.artifacts import model as model_artifact
from deepuad.artifacts.features import open_features
from deepuad.artifacts.model import checkpoint_path
from deepuad.errors import DataError, DeepUADError, InputError, ParamError, StaleError
from deepuad.estimators.params import RESUMABLE, from_record, record
from deepuad.stages._common import (
    default_output, detector_params, existing_artifact_matches, no_progress, Progress, resolve_device, set_threads, skipped,
)
from deepuad.stages.defaults import DEVICE

# ``resume``: start afresh; continue a run (exit 3 if there is nothing to continue); continue a
# run of the same inputs and parameters if there is one, else start afresh (scripts, ``run``)
RESUME_MODES = ("never", "required", "if-possible")


def train(
    features_path,
    clusters_path,
    output=None,
    resume="never",
    force=False,
    device=DEVICE,
    threads=None,
    skip_current=False,
    progress: Progress = no_progress,
    **train_params,
) -> dict:
    """Algorithm 1 from the clusters artifact's initial selection -> model artifact, checkpointed
    beside it (``checkpoint_path``) after every re-selection but the last; ``resume``: one of
    RESUME_MODES. ``train_params``: DeepUAD's parameters (params.PARAMS), checked before any work
    (ParamError)."""
    from deepuad.estimators.detector import DeepUAD
    from deepuad.estimators.distributed import World

    detector = DeepUAD(**train_params)
    detector.check_params()
    if resume not in RESUME_MODES:
        raise ParamError("resume", f"must be one of {', '.join(RESUME_MODES)}, got {resume!r}")
    output = art.check_output_path(output or default_output(features_path, "model"), [features_path, clusters_path])
    checkpoint = art.check_output_path(checkpoint_path(output), [features_path, clusters_path])
    had_checkpoint = checkpoint.exists()
    world = World.from_environment(resolve_device(device))  # joins the torchrun process group, if any
    try:
        threads = set_threads(threads, world.local_size)
        detector.device = world.device
        # under torchrun X stays on disk, and each process checks only its own rows: none reads
        # more than its share of the file
        with open_features(features_path, X="disk" if world.distributed else "memory") as features:
            if world.distributed:
                features.check_finite(*world.block(features.n_rows))
            return _train(detector, features, features_path, clusters_path, output, resume, force, threads, world,
                          skip_current, progress)
    except DeepUADError:
        # an error leaves no file behind; an interrupt (or a kill) leaves the checkpoint for --resume
        if world.is_root and not had_checkpoint:
            checkpoint.unlink(missing_ok=True)
        raise
    finally:
        world.close()


def _train(detector, features, features_path, clusters_path, output, resume, force, threads, world, skip_current,
           progress) -> dict:
    from deepuad.estimators.detector import DeepUAD
    from deepuad.estimators.metrics import ranking_metrics

    X, y = features.X, features.labels()
    clusters = clusters_artifact.read(clusters_path)
    art.require_made_from(clusters["inputs"], clusters_path, "features", features_path, features.fingerprint, force)
    selected = clusters["selected"]
    initial = from_record("clusters", clusters["params"])
    detector.p0 = _p0_of(initial["p0"], clusters_path, detector.p)  # recorded for provenance; used by cluster only
    detector.init_by = initial["init_by"]
    if len(selected) == 0 or selected.min() < 0 or selected.max() >= len(X):
        raise InputError(f"'selected' is empty or has indices outside [0, {len(X)})", clusters_path)
    params = record("model", {**detector.get_params(), "threads": threads, "processes": world.size})
    inputs = {
        "features": {"path": str(features_path), "fingerprint": features.fingerprint},
        "clusters": {"path": str(clusters_path), "fingerprint": clusters["fingerprint"]},
    }

    if skip_current and existing_artifact_matches(output, "model", params, inputs):
        return skipped(output)  # deepuad run: a complete model of these inputs and parameters
    checkpoint = checkpoint_path(output)
    resume_state, diagnostics = None, {}
    source = _resume_source(output, checkpoint, resume)
    if source is not None:
        try:
            resume_state, diagnostics = _load_checkpoint(source, params, inputs, len(X), X.shape[1], force)
        except StaleError as error:
            if resume == "required":
                raise
            warnings.warn(f"{source}: not resumed ({error.problem}); training afresh")

    def on_event(event: str, det: DeepUAD, info: dict) -> None:
        if event == "epoch":
            if not np.isfinite(info["loss"]):  # else the next re-selection blames the features ("contains NaN")
                raise DataError(_diverged(det, f"the training loss is {info['loss']} after epoch {info['epoch']}"))
            progress("training", info["epoch"], det.epochs, status=f"loss {info['loss']:.4g}")
            return
        iteration = info["iteration"]
        progress("training", iteration.epoch, det.epochs, line=f"epoch {iteration.epoch}/{det.epochs} loss {iteration.loss:.6g} "
                 f"changed {iteration.n_changed} kept {iteration.n_selected}")
        if y is not None:  # diagnostics from labels the algorithm never sees
            diagnostics[iteration.iteration] = _label_diagnostics(y, info["scores"], iteration.selected)
        if info["last"]:
            return  # the complete model follows at once, with everything a checkpoint would hold
        model_artifact.write_detector(checkpoint, det, params, len(X), False, inputs, features.encoding_fingerprint,
                                      diagnostics)

    if y is not None and 0 not in diagnostics:
        diagnostics[0] = {"selected_anomaly_share": float(np.mean(y[np.sort(selected)]))}
    try:  # rank 0 alone reports progress and writes checkpoints; the others only compute
        detector.fit(X, initial=selected, callback=on_event if world.is_root else None, resume_state=resume_state,
                     world=world)
    except ValueError as error:
        raise DataError(str(error), features_path) from None
    if not np.isfinite(detector.decision_scores_).all():
        raise DataError(_diverged(detector, "the trained model gives NaN or infinite scores"))
    final = {}
    if y is not None:
        final = ranking_metrics(y, detector.decision_scores_)
    if world.is_root:
        # one process scored the rows in score's own batches (DeepUAD._all_scores): score takes these
        model_artifact.write_detector(output, detector, params, len(X), True, inputs, features.encoding_fingerprint,
                                      diagnostics, final, None if world.distributed else detector.decision_scores_,
                                      _drift_reference(X, detector.decision_scores_, detector.threshold_))
        try:
            checkpoint.unlink(missing_ok=True)  # the finished model holds all it held
        except OSError as error:
            warnings.warn(f"{checkpoint}: could not remove this run's checkpoint ({error.strerror or error}); delete it")
    world.barrier()  # no rank exits (and so ends the torchrun job) before the model is written
    last = detector.iterations_[-1]
    summary = {
        "output": str(output), "rows": len(X), "epochs": detector.epoch_, "stop_reason": detector.stop_reason_,
        "score_parts": list(detector.score_parts_),  # what the score combines here ("auto" chooses by the data)
        "reselections": len(detector.iterations_) - 1, "selected": last.n_selected, "last_changed": last.n_changed,
        "device": detector.device, "threads": threads, "processes": world.size, "resumed": resume_state is not None,
    }
    summary.update({f"train_{k}": v for k, v in final.items()})
    return summary


def _p0_of(p0, clusters_path, p: float) -> float:
    """``p0``, which the clusters file records; ParamError unless ``p`` (the re-selection's
    threshold) is below it, as the paper's p < p0 and ``train --help`` say."""
    if isinstance(p0, bool) or not isinstance(p0, (int, float)) or not 0 < p0 < 100:
        raise InputError(f"attribute 'params' records p0 = {p0!r}, not a percentage in (0, 100) (corrupt?)", clusters_path)
    if not p < p0:
        raise ParamError("p", f"must be below the p0 that {clusters_path} was made with (cluster `p0` {p0:g}), got {p:g}")
    return p0


def _resume_source(output: Path, checkpoint: Path, resume: str) -> Path | None:
    """The file a run continues from: its checkpoint; else the output, with "required" any model
    there (a finished one trains on, e.g. with more --epochs), with "if-possible" only an
    unfinished one (older versions checkpointed into the output itself). None: start afresh.
    InputError when "required" finds neither."""
    if resume == "never":
        return None
    if checkpoint.exists():
        return checkpoint
    if Path(output).exists() and (resume == "required" or not _is_complete(output)):
        return Path(output)
    if resume == "required":
        raise InputError(f"cannot `resume`: there is no checkpoint ({checkpoint}) and no model to train on; "
                         "drop `resume`, or pass `resume_or_start` to start afresh when there is nothing to resume", output)
    return None


def _is_complete(path) -> bool:
    try:
        return model_artifact.read(path, state=False).meta["complete"]
    except DeepUADError:
        return True  # not a model this run could continue: it is replaced, as any output is


def _diverged(detector, what: str) -> str:
    return (f"training diverged: {what} (learning rate `lr` {detector.lr:g}; try a smaller one); "
            "no model was written")


def _label_diagnostics(y: np.ndarray, scores: np.ndarray, selected: np.ndarray) -> dict:
    from deepuad.estimators.metrics import binary_metrics

    share = float(np.mean(y))
    flagged = scores > np.quantile(scores, 1 - share) if 0 < share < 1 else np.zeros(len(y), bool)
    metrics = binary_metrics(y, scores, flagged)
    metrics["selected_anomaly_share"] = float(np.mean(y[selected]))
    return metrics


def _drift_reference(X, scores: np.ndarray, cut: float) -> dict:
    """The bins ``score`` measures drift against, learned on evenly spaced training rows (a
    bounded sample: X may be an HDF5 dataset of any size), those scoring at most ``cut`` (the
    model's threshold) for the columns."""
    from deepuad.estimators import drift
    from deepuad.estimators.detector import take_rows

    rows = drift.reference_rows(len(X))
    return {**drift.fit_reference(take_rows(X, rows), scores[rows], cut), "rows": len(rows)}


def _load_checkpoint(path, params, inputs, n_rows, n_features, force):
    """The training state of the model or checkpoint at ``path`` ((arrays, state), diagnostics),
    StaleError unless it was made by a run of these parameters and inputs."""
    arrays, state, diagnostics, meta = model_artifact.read(path)
    old = meta["params"]
    changed = sorted(k for k in set(old) | set(params) if k not in RESUMABLE and old.get(k) != params.get(k))
    if changed and not force:
        raise StaleError(f"cannot `resume`: parameters differ from the checkpoint ({', '.join(changed)})", path)
    for role in ("features", "clusters"):
        if meta["inputs"].get(role, {}).get("fingerprint") != inputs[role]["fingerprint"] and not force:
            raise StaleError(f"cannot `resume`: the checkpoint was made from a different {role} file", path)
    if meta["n_rows"] != n_rows:
        raise StaleError(f"cannot `resume`: checkpoint has {meta['n_rows']} rows, features have {n_rows}", path)
    if meta["architecture"]["n_features"] != n_features:
        raise StaleError(f"cannot `resume`: the checkpoint expects {meta['architecture']['n_features']} features, "
                         f"not {n_features}", path)
    _check_resume_state(arrays, state, params, n_rows, n_features, path)
    return (arrays, state), diagnostics


def _check_resume_state(arrays: dict, state: dict, params: dict, n_rows: int, n_features: int, path) -> None:
    """InputError naming the checkpoint for anything its restore or the training after it would
    trip over (empty or out-of-range selections, a broken optimiser or RNG state, NaN weights),
    instead of an internal error or a NaN loss blamed on the features."""
    from deepuad.estimators.detector import DeepUAD

    for record in state["iterations"]:
        selected = arrays.get(f"iterations/{record['iteration']}/selected")
        if selected is None or len(selected) == 0 or selected.min() < 0 or selected.max() >= n_rows:
            raise InputError(f"cannot `resume`: the selection of iteration {record['iteration']} is empty or has row "
                             f"indices outside [0, {n_rows}) (corrupt?)", path)
    if not (isinstance(state.get("epoch"), int) and 0 <= state["epoch"]):
        raise InputError("cannot `resume`: the checkpoint's epoch is not a count (corrupt?)", path)
    for name, values in arrays.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise InputError(f"cannot `resume`: dataset '{name}' holds NaN or infinite values (corrupt?)", path)
    probe = DeepUAD(**detector_params(params), device="cpu")
    try:
        probe.set_state((arrays, state), n_features, n_rows)
        for group in probe.optimizer_.param_groups:
            if not all(np.isfinite(float(group[key])) for key in ("lr", "eps", "weight_decay")):
                raise ValueError("optimizer settings are not finite numbers")
            for parameter in group["params"]:  # Adam's moments: torch does not check their shapes
                for key, value in probe.optimizer_.state.get(parameter, {}).items():
                    if key != "step" and tuple(value.shape) != tuple(parameter.shape):
                        raise ValueError(f"optimizer '{key}' has shape {tuple(value.shape)}, its weight {tuple(parameter.shape)}")
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as error:
        raise InputError(f"cannot `resume`: the checkpoint's training state is unusable (corrupt?): "
                         f"{type(error).__name__}: {error}"[:400], path) from None
