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
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np

from deepuad.artifacts.envelope import inputs_of, Kind, open_artifact, register, write_artifact
from deepuad.artifacts.safe_read import attr_json, inflation_limit, MAX_LAYERS, MAX_WIDTH, read_array
from deepuad.artifacts.schema import (
    Array, Attr, Either, Flag, Inflation, Json, Nullable, Number, Record, SchemaError, Seq, Text, check_value, python_value,
)
from deepuad.errors import DataError, InputError
from deepuad.estimators.constraints import Integral, Options, Widths
from deepuad.estimators.params import ACTIVATIONS, LIMITS, MAX_CONTAMINATION, MAX_EPOCHS, recorded
from deepuad.estimators.parts import PARTS, SCORES
from deepuad.estimators.scoring import FOREST_ARRAYS, check_forest

# the score of every row the model was trained on (train's last pass), which ``score`` takes
# instead of scoring that features file again
TRAINING_SCORES = "training_scores"
# the training data's bins per column and of the score (deepuad.estimators.drift.fit_reference)
DRIFT_REFERENCE = "drift_reference"
DRIFT_ARRAYS = ("edges", "proportions", "score_edges", "score_proportions")  # drift_reference/<name>
MAX_DRIFT_BINS = 64  # train writes 10; a bin index is counted as one byte


def _check_model(f: h5py.File, path: Path) -> None:
    """What the declarations cannot say: iteration t is record t (each with its own selection),
    and a finished model's scorer is there (its forest made of trees of the depth and size its
    samples allow)."""
    if "iterations" not in f.attrs:
        return
    records, params = attr_json(f, "iterations"), attr_json(f, "params")
    state = attr_json(f, "state") if "state" in f.attrs else {}
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
    complete = bool(f.attrs.get("complete", False))
    if complete and params.get("score", "cosine") != "cosine" and "score_parts" not in state:
        raise InputError(f"attribute 'state.score_parts' is missing from a finished model scored by "
                         f"{params.get('score')!r} (corrupt or crafted?)", path)


def most_records(f: h5py.File) -> int:
    """The most re-selection records the declared training makes: the initial selection, one
    every r epochs (train takes at most LIMITS["reselections"]), and the last epochs'."""
    params = attr_json(f, "params")  # checked before "iterations", which this bounds
    epochs, r = params.get("epochs"), params.get("r")
    reselections = epochs // r if isinstance(epochs, int) and isinstance(r, int) and r >= 1 else 0
    return min(reselections, LIMITS["reselections"]) + 2


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


def read_drift_reference(path) -> dict | None:
    """The training data's drift reference of a model (``drift.fit_reference``'s arrays, ``cut``
    and ``rows``), checked so that a crafted file cannot make the counting fail, or None for a
    model made before it was stored."""
    with open_artifact(path, "model") as f:
        if DRIFT_REFERENCE not in f:
            return None
        n_features = attr_json(f, "architecture")["n_features"]
        reference = {}
        for name in DRIFT_ARRAYS:
            if not isinstance(f.get(f"{DRIFT_REFERENCE}/{name}"), h5py.Dataset):  # its dtype and rank: declared
                raise InputError(f"dataset '{DRIFT_REFERENCE}/{name}' is missing", path)
            reference[name] = read_array(f, f"{DRIFT_REFERENCE}/{name}").astype(np.float64)
        rows, cut = f[DRIFT_REFERENCE].attrs.get("rows"), f[DRIFT_REFERENCE].attrs.get("cut")
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
    read only attributes. ``meta``: the model's fingerprint, params and contamination_estimate."""
    with open_artifact(path, "model") as f:
        params = attr_json(f, "params")
        if (TRAINING_SCORES not in f or not bool(f.attrs.get("complete", False)) or "contamination_estimate" not in f.attrs
                or inputs_of(f).get("features", {}).get("fingerprint") != features_fingerprint
                or int(f.attrs.get("training_scores_batch_rows", -1)) != batch_rows
                or device not in ("auto", params.get("device"))):
            return None
        check_weight_shapes(f, path, attr_json(f, "architecture"))  # as load_model does
        for name in _dataset_names(f, "weights/"):
            check_finite_weights(name, read_array(f, name), path)
        scores = read_array(f, TRAINING_SCORES).astype(np.float32, copy=False)
        if not np.isfinite(scores).all():
            raise InputError(f"dataset '{TRAINING_SCORES}' holds NaN or infinite scores (corrupt?)", path)
        meta = {"fingerprint": str(f.attrs["fingerprint"]), "params": params,
                "contamination_estimate": float(f.attrs["contamination_estimate"])}
    return scores, meta


def check_finite_weights(name: str, values: np.ndarray, path) -> None:
    """DataError naming the model if weight ``name`` holds NaN or infinity: whatever scores it, or
    scored with it, would not be numbers (``load_model``, ``stored_scores``)."""
    if not np.isfinite(values).all():
        raise DataError(f"dataset '{name}' holds NaN or infinite weights; its scores would not be numbers", path)


def read(path) -> tuple[dict[str, np.ndarray], dict, dict, dict]:
    """(arrays, state, diagnostics, meta) of a model artifact, its weights checked against its
    architecture; ``meta``: fingerprint, encoding_fingerprint, complete, n_rows, params, architecture."""
    with open_artifact(path, "model") as f:
        architecture = attr_json(f, "architecture")
        check_weight_shapes(f, path, architecture)
        arrays, state, diagnostics = read_model_state(f)
        meta = {
            "fingerprint": str(f.attrs["fingerprint"]), "encoding_fingerprint": str(f.attrs.get("encoding_fingerprint", "")),
            "complete": bool(f.attrs.get("complete", False)), "n_rows": int(f.attrs["n_rows"]),
            "params": attr_json(f, "params"), "architecture": architecture,
        }
    return arrays, state, diagnostics, meta


def describe(f, path) -> dict:
    iterations = []
    for record in attr_json(f, "iterations"):
        group = f[f"iterations/{record['iteration']}"]
        iterations.append({k: (v.item() if hasattr(v, "item") else v) for k, v in group.attrs.items()})
    summary = {"complete": bool(f.attrs["complete"]), "stop_reason": str(f.attrs["stop_reason"]),
               "epochs": int(attr_json(f, "state")["epoch"]), "rows": int(f.attrs["n_rows"]),
               "score": attr_json(f, "params").get("score", "cosine"),
               **({"contamination_estimate": float(f.attrs["contamination_estimate"])}
                  if "contamination_estimate" in f.attrs else {}),
               **{f"train_{k}": v for k, v in attr_json(f, "final_metrics").items()}}
    return {"architecture": attr_json(f, "architecture"), "iterations": iterations, "summary": summary}


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


def read_model_state(f: h5py.File):
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


# ----------------------------------------------------------------------------- the schema
INTEGER = Number(0, integer=True)


def _file_schema(constraints):
    """The schema of a recorded parameter: what its constraints (params.PARAMS) allow, within what
    a model file may declare (layers at most MAX_WIDTH wide, at most MAX_LAYERS of them)."""
    kinds = tuple(_file_kind(constraint) for constraint in constraints)
    return kinds[0] if len(kinds) == 1 else Either(kinds)


def _file_kind(constraint):
    if constraint is None:
        return None
    if constraint is bool:
        return Flag()
    if constraint is str:
        return Text()
    if isinstance(constraint, Options):
        return Text(choices=constraint.choices())
    if isinstance(constraint, Widths):
        return Seq(_file_kind(dataclasses.replace(constraint.item, high=MAX_WIDTH)), min_len=1, max_len=MAX_LAYERS)
    left, right = constraint.closed in ("both", "left"), constraint.closed in ("both", "right")
    return Number(constraint.low, constraint.high if right else None, integer=constraint.kind is Integral,
                  low_open=not left, below=None if right else constraint.high)


# the parameters train records (params.recorded("model")) and load_model hands back to DeepUAD
TRAIN_PARAMS = Record({param.key: _file_schema(param.constraints) for param in recorded("model") if param.constraints},
                      required=("epochs", "r"))  # they bound the records of "iterations"
ARCHITECTURE = Record({"n_features": Number(1, MAX_WIDTH, integer=True),
                       "layers": Seq(Number(1, MAX_WIDTH, integer=True), min_len=1, max_len=MAX_LAYERS),
                       "activation": Text(choices=ACTIVATIONS)}, required=("n_features", "layers", "activation"))
MAX_PARTS = max(map(len, SCORES.values()))
STATE = Record({"epoch": Number(0, MAX_EPOCHS, integer=True), "converged": Flag(), "optimizer_param_groups": Text(),
                "score_parts": Seq(Text(choices=tuple(sorted(PARTS))),
                                   min_len=1, max_len=MAX_PARTS),
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
MAX_TREES = 4096
NODES = "len:scorer/forest/left"
ROWS = "attr:n_rows"
# a model is read whole, its selections too (compressed, sorted row indices: 19:1 on the KDDCUP
# sample, 40:1 on its 494k rows): together they may declare 160 MiB, or 16 times the file's size
# if that is more (docs/threat-model.md says why; _put_selections keeps deepuad's models within it)
SELECTIONS_INFLATION = Inflation(160 << 20, 16, "fill gigabytes of memory (a model is read whole)")
SELECTED = Array("iu", 1, values=Number(0, below=ROWS), max_len=ROWS, inflation=SELECTIONS_INFLATION)
KIND = register(Kind(
    "model", check=_check_model, describe=describe, bounds={"records": most_records},
    datasets={
        "epoch_losses": Array("f", 1, required=True, values=Number(0), max_len=MAX_EPOCHS),
        "rng_state": Array("u", 1, required=True, max_len=1 << 16),
        "iterations/0/selected": dataclasses.replace(SELECTED, required=True),
        "iterations/*/selected": SELECTED,
        # NaN or infinite weights are unusable data, refused with exit 4 by check_finite_weights
        # (their shapes: check_weight_shapes, from the architecture)
        "weights/*": Array("f", (1, 2)), "optimizer/*": Array("f", (0, 1, 2)),
        TRAINING_SCORES: Array("f", 1, length=ROWS),
        "scorer/reference": Array("f", 2, values=Number(), max_len=1 << 20),
        "scorer/score_center": Array("f", 1, values=Number(), max_len=MAX_PARTS),
        "scorer/score_scale": Array("f", 1, values=Number(0, low_open=True), max_len=MAX_PARTS),
        "scorer/score_weights": Array("f", 1, values=Number(0, low_open=True), max_len=MAX_PARTS),
        # the forest's trees (scoring.check_forest checks that they are trees, and of what depth)
        "scorer/forest/left": Array("i", 1, values=Number(-1, below=NODES)),
        "scorer/forest/right": Array("i", 1, values=Number(-1, below=NODES), length=NODES),
        "scorer/forest/feature": Array("iu", 1, values=Number(0, below="dim:scorer/reference:1"), length=NODES),
        "scorer/forest/threshold": Array("f", 1, values=Number(), length=NODES),
        "scorer/forest/n_samples": Array("iu", 1, values=Number(1, high="value:scorer/forest/max_samples"), length=NODES),
        "scorer/forest/roots": Array("iu", 1, values=Number(0, below=NODES), max_len=MAX_TREES),
        "scorer/forest/max_samples": Array("iu", 1, values=Number(1, high="len:scorer/reference"), length=1),
        "scorer/reference_kept": Array("iu", 1, values=Number(0, 1, integer=True), length="len:scorer/reference"),
        "scorer/knn/reference": Array("f", 2, values=Number(), max_len="len:scorer/reference"),
        # the range part (parts.OutsideRange): one value per column
        "scorer/range/low": Array("f", 1, values=Number(), length="dim:scorer/reference:1"),
        "scorer/range/high": Array("f", 1, values=Number(), length="dim:scorer/reference:1"),
        "scorer/range/span": Array("f", 1, values=Number(0, low_open=True), length="dim:scorer/reference:1"),
        "scorer/range/offset": Array("f", 1, values=Number(0), length=1),
        # the drift reference (read_drift_reference checks bins and shares against one another)
        f"{DRIFT_REFERENCE}/edges": Array("f", 2, values=Number()),
        f"{DRIFT_REFERENCE}/proportions": Array("f", 2, values=Number(0, 1)),
        f"{DRIFT_REFERENCE}/score_edges": Array("f", 1, values=Number()),
        f"{DRIFT_REFERENCE}/score_proportions": Array("f", 1, values=Number(0, 1)),
    },
    attrs={"architecture": Attr(Json(ARCHITECTURE), required=True), "state": Attr(Json(STATE), required=True),
           "iterations": Attr(Json(ITERATIONS), required=True), "complete": Attr(Flag()), "stop_reason": Attr(Text()),
           "n_rows": Attr(Number(1, integer=True), required=True), "encoding_fingerprint": Attr(Text(max_len=128)),
           "final_metrics": Attr(Json(Record(other=Nullable(Number(nan=True))))),
           "contamination_estimate": Attr(Number(0, MAX_CONTAMINATION, low_open=True)),
           "training_scores_batch_rows": Attr(Number(1, integer=True)),
           "params": Attr(Json(TRAIN_PARAMS), required=True)},
    descriptions={
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
        "scorer/knn/reference": "the distinct rows of scorer/reference: the k-NN part's neighbours",
        "scorer/score_center": "median of each score part over the reference rows",
        "scorer/score_scale": "interquartile range of each score part over the reference rows",
        "scorer/score_weights": "weight of each score part in the combined score (absent: equal weights)",
        "scorer/forest/left": "isolation forest: left child of each node (-1 = leaf), all trees concatenated",
        "scorer/forest/right": "isolation forest: right child of each node (-1 = leaf)",
        "scorer/forest/feature": "isolation forest: column each node splits on",
        "scorer/forest/threshold": "isolation forest: split value of each node (go left when x <= it)",
        "scorer/forest/n_samples": "isolation forest: training rows that reached each node",
        "scorer/forest/roots": "isolation forest: index of each tree's root node",
        "scorer/forest/max_samples": "isolation forest: rows each tree was grown on",
        "scorer/range/low": "range part: each column's low end of the kept range",
        "scorer/range/high": "range part: each column's high end of the kept range",
        "scorer/range/span": "range part: each column's kept range (the unit of the distance beyond it)",
        "scorer/range/offset": "range part: the level its values reach by chance on normal rows, subtracted from them",
    },
))
