"""The model artifact: a trained (or checkpointed) DeepUAD, stored as plain HDF5 datasets.

It only stores what ``DeepUAD.get_state()`` returns and hands it back for ``set_state``:
``weights/*`` and ``optimizer/*`` (tensors as arrays), ``rng_state``, ``epoch_losses``,
``iterations/<t>/selected`` (with each re-selection's record and label diagnostics as group
attributes) and ``scorer/*``; the JSON attributes ``architecture``, ``state`` and
``iterations``. Loading never unpickles or executes anything. A complete model also holds the
score of every row it was trained on (``training_scores``, not part of the state): ``score``
takes them for that features file instead of computing them again (``stored_scores``), and the
training data's drift reference (``drift_reference/*``: bin edges and shares per column and of
the score, ``deepuad.estimators.drift``), which ``score`` measures new data against.

A checkpoint is a model in progress: ``complete`` false and no scorer, written beside the output
it is for (``checkpoint_path``) after every re-selection and read back by ``train --resume``.
``write_detector`` writes either from a DeepUAD; ``read`` reads either, whatever its schema
version: a version-2 file holds all it declares (a finished model its whole scorer, its
contamination estimate and every parameter), and a version-1 file goes through ``_v1_header`` and
``_v1_state``, which supply what models made before those fields lack.

The score's own arrays (``scorer/<part>/*``) are declared by the part that stores them
(``Part.stores``), and the score and part names a model may name are the registry's
(``parts.PARTS``): the schema reads the registry when it checks or writes a file, so a part
registered after this module is imported is stored and read back like the others.

Longer than 400 lines: the schema, the writer and the readers (of both versions, of the stored
scores and of the drift reference) of one kind, kept together as every kind's are.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from deepuad.artifacts.envelope import (
    Derived, inputs_of, Kind, open_artifact, register, schema_version, write_artifact,
)
from deepuad.artifacts.safe_read import attr_json, inflation_limit, MAX_LAYERS, MAX_WIDTH, read_array
from deepuad.artifacts.schema import (
    Array, Attr, Flag, Inflation, Json, Nullable, Number, Record, SchemaError, Seq, Text, check_value, param_schema,
    python_value,
)
from deepuad.errors import DataError, InputError
from deepuad.estimators.params import (
    ACTIVATIONS, LIMITS, MAX_CONTAMINATION, MAX_EPOCHS, SCORE_BATCH_ROWS, recorded, unrecorded,
)
from deepuad.estimators import parts  # the registry of score parts, read when a file is checked or written
from deepuad.estimators.scoring import FOREST_ARRAYS, check_forest

# the score of every row the model was trained on (train's last pass), which ``score`` takes
# instead of scoring that features file again
TRAINING_SCORES = "training_scores"
# the training data's bins per column and of the score (deepuad.estimators.drift.fit_reference)
DRIFT_REFERENCE = "drift_reference"
DRIFT_ARRAYS = ("edges", "proportions", "score_edges", "score_proportions")  # drift_reference/<name>
MAX_DRIFT_BINS = 64  # train writes 10; a bin index is counted as one byte
# a finished model's scorer (but for the cosine score, which needs none): what every score's parts
# share, and each part's own arrays (``Part.state()``, declared by ``Part.stores``), under scorer/
SCORER_ARRAYS = ("reference", "reference_kept", "score_center", "score_scale", "score_weights")


def checkpoint_path(output) -> Path:
    """Where a run that writes ``output`` keeps its checkpoints: beside it, ``m.model.h5`` ->
    ``m.model.checkpoint.h5``, never the output itself, so that a killed retrain leaves the model
    in use as it was."""
    output = Path(output)
    stem = output.name[:-3] if output.name.endswith(".h5") else output.name
    return output.with_name(f"{stem}.checkpoint.h5")


def _check_model(f: h5py.File, path: Path) -> None:
    """What the declarations cannot say: iteration t is record t (each with its own selection),
    a finished model's forest is made of trees of the depth and size its samples allow, and a
    finished model holds its scorer (``_check_finished``)."""
    records = attr_json(f, "iterations")
    for index, record in enumerate(records):
        if record["iteration"] != index:
            raise InputError(f"attribute 'iterations[{index}].iteration' is {record['iteration']}, expected {index} "
                             "(corrupt or crafted?)", path)
        name = f"iterations/{index}"
        if not isinstance(f.get(f"{name}/selected"), h5py.Dataset):
            raise InputError(f"dataset '{name}/selected' is missing", path)
        try:
            check_value(ITERATION_GROUP, {key: python_value(value) for key, value in f[name].attrs.items()}, name,
                        lambda _: None)
        except SchemaError as error:
            raise InputError(f"attribute {error} (corrupt or crafted?)", path) from None
    forest = {name: f"scorer/forest/{name}" for name in FOREST_ARRAYS}
    if any(name in f for name in forest.values()):  # trees, of the depth and size their samples allow
        try:
            check_forest({key: read_array(f, name) for key, name in forest.items() if name in f},
                         attr_json(f, "architecture")["n_features"])
        except ValueError as error:
            raise InputError(f"dataset 'scorer/forest': {error} (corrupt or crafted?)", path) from None
    if TRAINING_SCORES in f and "training_scores_batch_rows" not in f.attrs and schema_version(f) > 1:
        raise InputError("attribute 'training_scores_batch_rows' is missing beside 'training_scores' (corrupt or crafted?)",
                         path)
    if bool(f.attrs["complete"]):
        _check_finished(f, path)


def _check_finished(f: h5py.File, path: Path) -> None:
    """InputError naming what a finished model lacks: its score parts; in version 2 also its
    contamination estimate and the scorer of its parts."""
    state = attr_json(f, "state")
    if schema_version(f) == 1:  # _v1_state supplies the rest: a model made before score parts scores by cosine
        score = _v1_params(attr_json(f, "params"))["score"]
        if score != "cosine" and "score_parts" not in state:
            raise InputError(f"attribute 'state.score_parts' is missing from a finished model scored by {score!r} "
                             "(corrupt or crafted?)", path)
        return
    for key in ("score_parts", "contamination_estimate"):
        if state.get(key) is None:
            raise InputError(f"attribute 'state.{key}' is missing from a finished model (corrupt or crafted?)", path)
    needed = [("attribute", "contamination_estimate", "contamination_estimate" in f.attrs)]
    names = state["score_parts"]  # registered parts: checked against the registry before (STATE)
    if names != ["cosine"]:
        for name in (*SCORER_ARRAYS, *(array for part in names for array in parts.PARTS[part].stores)):
            needed.append(("dataset", f"scorer/{name}", isinstance(f.get(f"scorer/{name}"), h5py.Dataset)))
    for what, name, present in needed:
        if not present:
            raise InputError(f"{what} '{name}' is missing from a finished model (corrupt or crafted?)", path)


def most_records(f: h5py.File) -> int:
    """The most re-selection records the declared training makes: the initial selection, one
    every r epochs (train takes at most LIMITS["reselections"]), and the last epochs'."""
    params = attr_json(f, "params")  # checked before "iterations", which this bounds
    epochs, r = params.get("epochs"), params.get("r")
    reselections = epochs // r if isinstance(epochs, int) and isinstance(r, int) and r >= 1 else 0
    return min(reselections, LIMITS["reselections"]) + 2


# ----------------------------------------------------------------------------- the writer
def write(path, arrays: dict, state: dict, architecture: dict, params: dict, inputs: dict, encoding_fp: str,
          diagnostics: dict, n_rows: int, complete: bool, stop_reason: str, final_metrics: dict | None = None,
          contamination_estimate: float | None = None, training_scores: np.ndarray | None = None,
          scores_batch_rows: int | None = None, drift_reference: dict | None = None) -> None:
    """A model artifact holding ``(arrays, state)`` from ``DeepUAD.get_state()``; ``diagnostics``:
    {iteration: {metric: value}} from labels the algorithm never saw; ``training_scores``: the
    score of every training row, computed in batches of ``scores_batch_rows`` (``stored_scores``);
    ``drift_reference``: ``drift.fit_reference``'s arrays and ``cut``, and ``rows``, how many
    rows it was learned on (a complete model only)."""
    with write_artifact(path, "model", params, inputs) as f:
        for name, values in arrays.items():
            if not name.startswith("iterations/"):
                f.create_dataset(name, data=values)
        _put_selections(f, [(name, values) for name, values in arrays.items() if name.startswith("iterations/")])
        for record in state["iterations"]:
            group = f[f"iterations/{record['iteration']}"]
            group.attrs.update({k: v for k, v in record.items()})
            group.attrs["n_selected"] = len(group["selected"])
            for key, value in diagnostics.get(record["iteration"], {}).items():
                group.attrs[key] = np.nan if value is None else value
        f.attrs["architecture"] = json.dumps(architecture)
        f.attrs["state"] = json.dumps({k: v for k, v in state.items() if k != "iterations"})
        f.attrs["iterations"] = json.dumps(state["iterations"])
        f.attrs["n_rows"] = n_rows
        f.attrs["encoding_fingerprint"] = encoding_fp
        f.attrs["complete"] = complete
        f.attrs["stop_reason"] = stop_reason if complete else "interrupted (checkpoint)"
        f.attrs["final_metrics"] = json.dumps(final_metrics or {})
        if complete:  # the share of anomalies estimated from the scores: score's default --contamination
            f.attrs["contamination_estimate"] = float(contamination_estimate)
        if complete and training_scores is not None:
            f.create_dataset(TRAINING_SCORES, data=np.asarray(training_scores, dtype=np.float32),
                             chunks=(min(n_rows, 65536),))
            f.attrs["training_scores_batch_rows"] = int(scores_batch_rows)
        if complete and drift_reference is not None:
            group = f.create_group(DRIFT_REFERENCE)
            for name in DRIFT_ARRAYS:
                group.create_dataset(name, data=np.asarray(drift_reference[name], dtype=np.float64))
            group.attrs["rows"] = int(drift_reference["rows"])
            group.attrs["cut"] = float(drift_reference["cut"])


def write_detector(path, detector, params: dict, n_rows: int, complete: bool, inputs: dict | None = None,
                   encoding_fp: str = "", diagnostics: dict | None = None, final_metrics: dict | None = None,
                   training_scores: np.ndarray | None = None, drift_reference: dict | None = None) -> None:
    """A DeepUAD's own state (``get_state``) as a model artifact: a checkpoint of a training in
    progress, or (``complete``) the trained model with its contamination estimate and, when given,
    the scores of its ``n_rows`` training rows (computed in score's batches, SCORE_BATCH_ROWS)."""
    arrays, state = detector.get_state()
    architecture = {"n_features": int(detector.n_features_in_), "layers": list(detector.layers_),
                    "activation": detector.activation}
    write(path, arrays, state, architecture, params, inputs or {}, encoding_fp, diagnostics or {}, n_rows, complete,
          detector.stop_reason_, final_metrics, detector.contamination_ if complete else None, training_scores,
          SCORE_BATCH_ROWS, drift_reference)


def _put_selections(f: h5py.File, selections: list[tuple[str, np.ndarray]]) -> None:
    """The selections (sorted row indices), compressed to keep checkpoints small, except one
    that would take them together beyond what readers accept (``SELECTIONS_INFLATION``, against
    the file as written so far: it only grows), which is stored plain: deepuad never writes a
    model that it refuses to read."""
    declared = 0
    for name, values in selections:
        declared += values.nbytes
        f.create_dataset(name, data=values, compression="gzip", compression_opts=1, shuffle=True)
        f.flush()
        if declared > inflation_limit(SELECTIONS_INFLATION, f.id.get_filesize()):
            del f[name]
            f.create_dataset(name, data=values)


# ----------------------------------------------------------------------------- the reader
class Content(NamedTuple):
    """What ``read`` hands out. ``arrays``: ``get_state``'s arrays (weights, optimizer, rng_state,
    epoch_losses, selections, scorer); ``state``: its metadata, ``iterations`` included;
    ``diagnostics``: {iteration: {metric: value}}; ``meta``: the attributes (``_header``)."""

    arrays: dict[str, np.ndarray]
    state: dict
    diagnostics: dict[int, dict]
    meta: dict


def read(path, state: bool = True, training_scores: bool = False) -> Content:
    """A model artifact (a finished model or a checkpoint) of any schema version this deepuad
    reads, as version 2 holds it; its weights checked against its architecture. ``state``
    False: the attributes only (``meta``; arrays, state and diagnostics empty); ``training_scores``:
    ``meta["training_scores"]``, the training rows' scores (None where the model holds none)."""
    with open_artifact(path, "model") as f:
        content = Content({}, {}, {}, _header(f))
        if state:
            check_weight_shapes(f, path, content.meta["architecture"])
            content = Content(*_state(f), content.meta)
            if schema_version(f) == 1:
                _v1_state(content.arrays, content.state, content.meta)
        if training_scores:
            content.meta["training_scores"] = read_array(f, TRAINING_SCORES) if TRAINING_SCORES in f else None
    return content


def _header(f: h5py.File) -> dict:
    """The attributes of an open model: fingerprint, inputs, params, architecture, n_rows,
    encoding_fingerprint, complete, stop_reason, final_metrics, contamination_estimate (None for a
    checkpoint) and training_scores_batch_rows (None without training scores)."""
    header = {
        "fingerprint": str(f.attrs["fingerprint"]), "inputs": inputs_of(f), "params": attr_json(f, "params"),
        "architecture": attr_json(f, "architecture"), "n_rows": int(f.attrs["n_rows"]),
        "encoding_fingerprint": str(f.attrs["encoding_fingerprint"]), "complete": bool(f.attrs["complete"]),
        "stop_reason": str(f.attrs["stop_reason"]), "final_metrics": attr_json(f, "final_metrics"),
    }
    if schema_version(f) == 1:
        return _v1_header(f, header)
    return {**header, "contamination_estimate": float(f.attrs["contamination_estimate"]) if header["complete"] else None,
            "training_scores_batch_rows": int(f.attrs["training_scores_batch_rows"]) if TRAINING_SCORES in f else None}


def _state(f: h5py.File) -> tuple[dict, dict, dict]:
    arrays: dict[str, np.ndarray] = {}

    def collect(name, obj):
        # training scores and the drift reference: outputs of fit, not its state
        if isinstance(obj, h5py.Dataset) and name != TRAINING_SCORES and not name.startswith(DRIFT_REFERENCE + "/"):
            arrays[name] = read_array(f, name)

    f.visititems(collect)
    state = attr_json(f, "state")
    state["iterations"] = attr_json(f, "iterations")
    diagnostics = {}
    for record in state["iterations"]:
        group = f[f"iterations/{record['iteration']}"]
        keys = ("auroc", "auprc", "f1", "precision", "recall", "anomaly_share", "selected_anomaly_share")
        diagnostics[record["iteration"]] = {k: float(group.attrs[k]) for k in keys if k in group.attrs}
    return arrays, state, diagnostics


def read_drift_reference(path) -> dict | None:
    """The training data's drift reference of a model (``drift.fit_reference``'s arrays, ``cut``
    and ``rows``), checked so that a crafted file cannot make the counting fail, or None for a
    model that holds none (``DeepUAD.save``'s, and models made before it was stored)."""
    with open_artifact(path, "model") as f:
        if DRIFT_REFERENCE not in f:
            return None
        n_features = attr_json(f, "architecture")["n_features"]
        reference = {}
        for name in DRIFT_ARRAYS:
            if not isinstance(f.get(f"{DRIFT_REFERENCE}/{name}"), h5py.Dataset):  # its dtype and rank: declared
                raise InputError(f"dataset '{DRIFT_REFERENCE}/{name}' is missing", path)
            reference[name] = read_array(f, f"{DRIFT_REFERENCE}/{name}").astype(np.float64)
        rows, cut = f[DRIFT_REFERENCE].attrs.get("rows"), f[DRIFT_REFERENCE].attrs.get("cut")  # checked below
    edges, proportions = reference["edges"], reference["proportions"]
    n_bins = proportions.shape[1] if proportions.ndim == 2 else 0
    consistent = (edges.shape == (n_features, n_bins - 1) and proportions.shape == (n_features, n_bins)
                  and 2 <= n_bins <= MAX_DRIFT_BINS and reference["score_edges"].shape == (n_bins - 1,)
                  and reference["score_proportions"].shape == (n_bins,))
    if not consistent:
        raise InputError(f"'{DRIFT_REFERENCE}' does not describe {n_features} columns in equal numbers of bins, 2 to "
                         f"{MAX_DRIFT_BINS} (corrupt?)", path)
    finite = all(np.isfinite(values).all() for values in reference.values())
    ordered = (np.diff(edges, axis=1) >= 0).all() and (np.diff(reference["score_edges"]) >= 0).all()
    summing = (np.abs(proportions.sum(axis=1) - 1) < 1e-6).all() and abs(reference["score_proportions"].sum() - 1) < 1e-6
    if not (finite and ordered and summing and (proportions >= 0).all() and (reference["score_proportions"] >= 0).all()):
        raise InputError(f"'{DRIFT_REFERENCE}' holds bins that are not finite, ordered edges with shares summing to 1 (corrupt?)",
                         path)
    if not (np.ndim(rows) == 0 and np.asarray(rows).dtype.kind in "iu" and int(rows) > 0):
        raise InputError(f"attribute 'rows' of '{DRIFT_REFERENCE}' is not a positive count (corrupt?)", path)
    if not (np.ndim(cut) == 0 and np.asarray(cut).dtype.kind == "f" and np.isfinite(cut)):
        raise InputError(f"attribute 'cut' of '{DRIFT_REFERENCE}' is not a finite score (corrupt?)", path)
    reference["rows"], reference["cut"] = int(rows), float(cut)
    return reference


def stored_scores(path, features_fingerprint: str, batch_rows: int, device: str) -> tuple[np.ndarray, dict] | None:
    """(scores, meta) of the rows a complete model was trained on, if ``features_fingerprint`` is
    that of its training features, ``train`` scored them in batches of ``batch_rows`` (``score``'s
    own) and ``device`` is "auto" or the one they were computed on: then they are what ``score``
    would compute for that file, to the bit, and it need not load the network. Else None, having
    read only attributes. ``meta``: the model's attributes (``read``'s)."""
    with open_artifact(path, "model") as f:
        meta = _header(f)
        if (TRAINING_SCORES not in f or not meta["complete"] or meta["contamination_estimate"] is None
                or meta["inputs"].get("features", {}).get("fingerprint") != features_fingerprint
                or meta["training_scores_batch_rows"] != batch_rows
                or device not in ("auto", meta["params"]["device"])):
            return None
        check_weight_shapes(f, path, meta["architecture"])  # as load_model does
        for name in _dataset_names(f, "weights/"):
            check_finite_weights(name, read_array(f, name), path)
        scores = read_array(f, TRAINING_SCORES).astype(np.float32, copy=False)
        if not np.isfinite(scores).all():
            raise InputError(f"dataset '{TRAINING_SCORES}' holds NaN or infinite scores (corrupt?)", path)
    return scores, meta


def check_finite_weights(name: str, values: np.ndarray, path) -> None:
    """DataError naming the model if weight ``name`` holds NaN or infinity: whatever scores it, or
    scored with it, would not be numbers (``load_model``, ``stored_scores``)."""
    if not np.isfinite(values).all():
        raise DataError(f"dataset '{name}' holds NaN or infinite weights; its scores would not be numbers", path)


def describe(f, path) -> dict:
    iterations = []
    for record in attr_json(f, "iterations"):
        group = f[f"iterations/{record['iteration']}"]
        iterations.append({k: (v.item() if hasattr(v, "item") else v) for k, v in group.attrs.items()})
    header = _header(f)
    summary = {"complete": header["complete"], "stop_reason": header["stop_reason"],
               "epochs": int(attr_json(f, "state")["epoch"]), "rows": header["n_rows"], "score": header["params"]["score"],
               # as the file holds it: a version-1 model made before the estimate shows none
               **({"contamination_estimate": float(f.attrs["contamination_estimate"])}
                  if "contamination_estimate" in f.attrs else {}),
               **{f"train_{k}": v for k, v in header["final_metrics"].items()}}
    return {"architecture": header["architecture"], "iterations": iterations, "summary": summary}


def weight_shapes(n_features: int, layers) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of ``Autoencoder(n_features, layers).state_dict()``, named as a
    model artifact stores it, worked out without torch (tests/test_artifacts_envelope.py holds it to the
    network): each half is a Sequential of Linear layers with an activation between two of
    them, so its k-th Linear layer has index 2k."""
    widths = [n_features, *layers]
    shapes = {}
    for half, sizes in (("encoder", widths), ("decoder", widths[::-1])):
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"weights/{half}.{2 * k}.weight"] = (n_out, n_in)
            shapes[f"weights/{half}.{2 * k}.bias"] = (n_out,)
    return shapes


def check_weight_shapes(f: h5py.File, path, architecture: dict) -> None:
    """InputError unless the stored weights have exactly the shapes the architecture declares.
    Checked on the file's metadata before the network is built, so that a small file declaring
    20,000-wide layers cannot make deepuad allocate gigabytes, and without torch, so that
    ``score`` of the rows a model was trained on (which takes its stored scores) checks the
    model as every other reader does at no cost."""
    if architecture["activation"] not in ACTIVATIONS:
        raise InputError(f"attribute 'architecture' does not describe a model (corrupt?): activation "
                         f"{architecture['activation']!r} is not one of {', '.join(ACTIVATIONS)}", path)
    # at most MAX_LAYERS of MAX_WIDTH: checked by open_artifact
    expected = weight_shapes(architecture["n_features"], architecture["layers"])
    stored = {name: tuple(f[name].shape) for name in _dataset_names(f, "weights/")}
    if stored != expected:
        wrong = sorted(set(stored.items()) ^ set(expected.items()))[:1]
        raise InputError(f"model weights are inconsistent with its architecture (corrupt?): {wrong[0][0]} "
                         f"{'is ' + str(stored.get(wrong[0][0])) if wrong[0][0] in stored else 'is missing'}, "
                         f"architecture needs {expected.get(wrong[0][0], 'none')}", path)


def _dataset_names(f: h5py.File, prefix: str) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and name.startswith(prefix) else None)
    return names


# ----------------------------------------------------------------------------- version 1
def _v1_params(params: dict) -> dict:
    """A version-1 model's parameters and those it may not record, with the value the models made
    before they were recorded were made with (score cosine, n_neighbors 5, p0 35, init_by variance)."""
    return {**unrecorded("model"), **params}


def _v1_header(f: h5py.File, header: dict) -> dict:
    """A version-1 model's attributes as version 2 holds them: the parameters it may not record
    (``_v1_params``); a finished model's contamination estimate, or for one made before the
    estimate the share p / 100 that its training leaves out, which score took as its default;
    the batch size of its training scores where it has both."""
    params = _v1_params(header["params"])
    estimate = None
    if header["complete"]:
        estimate = float(f.attrs["contamination_estimate"]) if "contamination_estimate" in f.attrs else params["p"] / 100
    batch_rows = "training_scores_batch_rows" in f.attrs and TRAINING_SCORES in f
    return {**header, "params": params, "contamination_estimate": estimate,
            "training_scores_batch_rows": int(f.attrs["training_scores_batch_rows"]) if batch_rows else None}


def _v1_state(arrays: dict, state: dict, meta: dict) -> None:
    """A version-1 model's state as version 2 holds it (in place). A finished model made before
    score parts scores by the network's cosine error alone (the only score then; _check_finished
    refuses any other), and before the estimate with the share of ``_v1_header``; a scorer made
    before score weights averages its parts plainly (weight 1 each), before the mask of kept
    reference rows counts every reference row as kept, and before the k-NN part kept its own
    distinct rows measures against the reference rows, copies and all, and before the range was
    calibrated takes nothing off it."""
    if not meta["complete"]:
        return
    parts = state.setdefault("score_parts", ["cosine"])
    if state.get("contamination_estimate") is None:
        state["contamination_estimate"] = meta["contamination_estimate"]
    if "scorer/reference" in arrays:
        reference = arrays["scorer/reference"]
        arrays.setdefault("scorer/score_weights", np.ones(len(parts)))
        arrays.setdefault("scorer/reference_kept", np.ones(len(reference), np.uint8))
        if "knn" in parts:
            arrays.setdefault("scorer/knn/reference", reference)
        if "range" in parts:
            arrays.setdefault("scorer/range/offset", np.zeros(1))


# ----------------------------------------------------------------------------- the schema
INTEGER = Number(0, integer=True)


# the parameters train records (params.recorded("model")) and load_model hands back to DeepUAD: a
# version-2 model records every one; a version-1 model at least epochs and r, which bound the
# records of "iterations", and p and device, which every version-1 model records too (_v1_params
# supplies the others it may not record)
_TRAIN_PARAMS = {param.key: param_schema(param.constraints, MAX_WIDTH, MAX_LAYERS) for param in recorded("model")
                 if param.constraints}
TRAIN_PARAMS = Record(_TRAIN_PARAMS, required=tuple(_TRAIN_PARAMS))
V1_TRAIN_PARAMS = Record(_TRAIN_PARAMS, required=("epochs", "r", "p", "device"))
ARCHITECTURE = Record({"n_features": Number(1, MAX_WIDTH, integer=True),
                       "layers": Seq(Number(1, MAX_WIDTH, integer=True), min_len=1, max_len=MAX_LAYERS),
                       "activation": Text(choices=ACTIVATIONS)}, required=("n_features", "layers", "activation"))


# the registered score parts, read when a file is checked: a part registered after this module is
# imported (in a test) is stored and read back like the others
def _part_names() -> tuple[str, ...]:
    return tuple(sorted(parts.PARTS))


def most_parts(f: h5py.File) -> int:
    """The most parts a registered score combines: the length of the per-part arrays of a scorer."""
    return max(len(parts.parts_of(score)) for score in parts.scores())


def _part_array(stored: parts.Stored) -> Array:
    """A part's declaration of an array as this schema declares it: its bounds name the scorer's
    arrays as the file does (scorer/<name>)."""
    def bound(value):
        if not isinstance(value, str):
            return value
        what, _, name = value.partition(":")
        return f"{what}:scorer/{name}"

    return Array(stored.kinds, stored.ndim, length=bound(stored.length), max_len=bound(stored.max_len),
                 values=Number(bound(stored.low), bound(stored.high), low_open=stored.low_open, below=bound(stored.below)))


PARTS_BOUND = "bound:parts"  # most_parts
STATE = Record({"epoch": Number(0, MAX_EPOCHS, integer=True), "converged": Flag(), "optimizer_param_groups": Text(),
                "score_parts": Seq(Text(choices=_part_names), min_len=1, max_len=PARTS_BOUND),
                "contamination_estimate": Nullable(Number(0, MAX_CONTAMINATION, low_open=True))},
               required=("epoch", "converged", "optimizer_param_groups"))
ITERATION_KEYS = ("iteration", "epoch", "n_changed", "loss", "threshold", "fallback")
# an iteration's threshold is a cut-off in variance or error; the first one (no re-selection yet) has none
ITERATION = Record({"iteration": INTEGER, "epoch": INTEGER, "n_changed": INTEGER, "loss": Number(0, nan=True),
                    "threshold": Number(nan=True), "fallback": Flag()}, required=ITERATION_KEYS)
ITERATIONS = Seq(ITERATION, min_len=1, max_len="bound:records")
# the attributes of group iterations/<t>: its record, the size of its selection, and label
# diagnostics (auroc, f1, ...; NaN where undefined), read with float()
ITERATION_GROUP = Record({**ITERATION.fields, "n_selected": INTEGER}, other=Number(nan=True))
ROWS = "attr:n_rows"
# a model is read whole, its selections too (compressed, sorted row indices: 19:1 on the KDDCUP
# sample, 40:1 on its 494k rows): together they may declare 160 MiB, or 16 times the file's size
# if that is more (docs/threat-model.md says why; _put_selections keeps deepuad's models within it)
SELECTIONS_INFLATION = Inflation(160 << 20, 16, "fill gigabytes of memory (a model is read whole)")
SELECTED = Array("iu", 1, values=Number(0, below=ROWS), max_len=ROWS, inflation=SELECTIONS_INFLATION)
# what every model declares, whatever parts are registered
FIXED_DATASETS = {
    "epoch_losses": Array("f", 1, required=True, values=Number(0), max_len=MAX_EPOCHS),
    "rng_state": Array("u", 1, required=True, max_len=1 << 16),
    "iterations/0/selected": dataclasses.replace(SELECTED, required=True),
    "iterations/*/selected": SELECTED,
    # NaN or infinite weights are unusable data, refused with exit 4 by check_finite_weights
    # (their shapes: check_weight_shapes, from the architecture)
    "weights/*": Array("f", (1, 2)), "optimizer/*": Array("f", (0, 1, 2)),
    TRAINING_SCORES: Array("f", 1, length=ROWS),
    "scorer/reference": Array("f", 2, values=Number(), max_len=1 << 20),
    "scorer/score_center": Array("f", 1, values=Number(), max_len=PARTS_BOUND),
    "scorer/score_scale": Array("f", 1, values=Number(0, low_open=True), max_len=PARTS_BOUND),
    "scorer/score_weights": Array("f", 1, values=Number(0, low_open=True), max_len=PARTS_BOUND),
    "scorer/reference_kept": Array("iu", 1, values=Number(0, 1, integer=True), length="len:scorer/reference"),
    # each part's own arrays: _declarations
    # the drift reference (read_drift_reference checks bins and shares against one another)
    f"{DRIFT_REFERENCE}/edges": Array("f", 2, values=Number()),
    f"{DRIFT_REFERENCE}/proportions": Array("f", 2, values=Number(0, 1)),
    f"{DRIFT_REFERENCE}/score_edges": Array("f", 1, values=Number()),
    f"{DRIFT_REFERENCE}/score_proportions": Array("f", 1, values=Number(0, 1)),
}
FIXED_DESCRIPTIONS = {
    "selected": "indices of the rows in the training set",
    "epoch_losses": "mean training loss of each epoch",
    TRAINING_SCORES: "score of every row the model was trained on; score takes them for that features file",
    "rng_state": "state of the shuffling RNG, for exact resume",
    f"{DRIFT_REFERENCE}/edges": "drift reference: per column of X, the inner bin edges (quantiles of the training data)",
    f"{DRIFT_REFERENCE}/proportions": "drift reference: per column of X, the training rows' share in each bin",
    f"{DRIFT_REFERENCE}/score_edges": "drift reference: inner bin edges of the training rows' scores",
    f"{DRIFT_REFERENCE}/score_proportions": "drift reference: the training rows' share in each score bin",
    "scorer/reference": "sample of the rows the model was trained on (all of them, not only the kept ones): forest and score calibration",
    "scorer/reference_kept": "1 where a reference row is in the final training set: explain's expected values come from those",
    "scorer/score_center": "median of each score part over the reference rows",
    "scorer/score_scale": "interquartile range of each score part over the reference rows",
    "scorer/score_weights": "weight of each score part in the combined score (absent: equal weights)",
    # each part's own arrays: _declarations
}


@functools.lru_cache(maxsize=8)
def _declarations(registered: tuple) -> tuple[dict[str, Array], dict[str, str]]:
    """(datasets, descriptions) of a model while ``registered`` (``parts.PARTS``' items) are the
    parts: the fixed ones, and scorer/<name> for every array of every part (``Part.stores``)."""
    stored = {f"scorer/{name}": array for _, part in registered for name, array in part.stores.items()}
    return ({**FIXED_DATASETS, **{name: _part_array(array) for name, array in stored.items()}},
            {**FIXED_DESCRIPTIONS, **{name: array.description for name, array in stored.items()}})


KIND = register(Kind(
    "model", check=_check_model, describe=describe, bounds={"records": most_records, "parts": most_parts},
    datasets=Derived(lambda: _declarations(tuple(parts.PARTS.items()))[0]),
    descriptions=Derived(lambda: _declarations(tuple(parts.PARTS.items()))[1]),
    attrs={"architecture": Attr(Json(ARCHITECTURE), required=True), "state": Attr(Json(STATE), required=True),
           # complete, stop_reason, encoding_fingerprint and final_metrics: in every model deepuad wrote
           "iterations": Attr(Json(ITERATIONS), required=True), "complete": Attr(Flag(), required=True),
           "stop_reason": Attr(Text(), required=True), "n_rows": Attr(Number(1, integer=True), required=True),
           "encoding_fingerprint": Attr(Text(max_len=128), required=True),
           "final_metrics": Attr(Json(Record(other=Nullable(Number(nan=True)))), required=True),
           # a finished model's (_check_finished)
           "contamination_estimate": Attr(Number(0, MAX_CONTAMINATION, low_open=True)),
           "training_scores_batch_rows": Attr(Number(1, integer=True)),
           "params": Attr(Json(TRAIN_PARAMS), required=True)},
    v1_attrs={"params": Attr(Json(V1_TRAIN_PARAMS), required=True)},
))
