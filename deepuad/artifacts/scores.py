"""The scores artifact: one anomaly score per row, the threshold, is_anomaly and, with
ground truth, the metrics; from ``score``, the drift of the scored data from the training data
(``drift``: JSON summary, ``drift_psi``: PSI per column of X). Written by ``score``,
``merge-scores`` and ``baseline`` through the one writer here, so that the same scores give the
same file whichever command computed them.

What identifies the rows comes along from the features file when there is more to it than the
row's position (``features.identity_to_carry``): ``ids`` (input row numbers once ``extract
--missing drop`` left rows out, file paths, ...) and the ``id_columns`` group, in the features
file's layout (``features.write_identity`` / ``read_identity``)."""

from __future__ import annotations

import json

import h5py
import numpy as np

from deepuad.artifacts.envelope import inputs_of, Kind, open_artifact, params_of, put, register, write_artifact
from deepuad.artifacts.features import ID_COLUMNS, MAX_COLUMNS, write_identity
from deepuad.artifacts.safe_read import attr_json, finite_threshold, read_array
from deepuad.artifacts.schema import Array, Attr, Const, Either, Json, Nullable, Number, Record, Seq, Text
from deepuad.errors import DataError
from deepuad.estimators.params import MAX_CONTAMINATION


def no_progress(description: str, completed: int, total: int) -> None:
    pass


def require_finite_scores(values: np.ndarray, first_row: int, inputs: dict) -> None:
    """DataError for NaN or infinite scores: the last guard before any writer stores them, so
    that no command ends with exit 0 and scores (or a threshold, or metrics) that are not numbers."""
    finite = np.isfinite(values)
    if not finite.all():
        source = inputs.get("features", {}).get("path")
        raise DataError(f"{int((~finite).sum())} score(s) are NaN or infinite (first: row {first_row + int(np.argmin(finite))}); "
                        "nothing was written", source)


def read_finite_scores(values: np.ndarray, path) -> np.ndarray:
    """Scores read from an artifact, or DataError naming it if any is NaN or infinite."""
    finite = np.isfinite(values)
    if not finite.all():
        raise DataError(f"holds {int((~finite).sum())} NaN or infinite score(s) (first: row {int(np.argmin(finite))}); "
                        "metrics over them would mean nothing", path)
    return values


def _score_dataset(out: h5py.File, n_rows: int) -> h5py.Dataset:
    """The ``score`` dataset, filled chunk by chunk by the caller."""
    return out.create_dataset("score", shape=(n_rows,), dtype=np.float32, chunks=(min(n_rows, 65536),) if n_rows else None)


def write_scores(output, params: dict, inputs: dict, n_rows: int, chunks, y, contamination, threshold,
                 progress=no_progress, description: str = "scoring", identity: tuple | None = None,
                 drift=None) -> dict:
    """The one writer of scores artifacts (score, merge-scores, baseline): stream the
    (first row, float32 scores) ``chunks`` into the file, then derive the threshold (given, else
    the 1 - ``contamination`` quantile), is_anomaly and, with labels ``y``, the metrics. The same
    scores, y and options give the same datasets and attributes whichever command computed them.
    ``identity``: (ids or None, {id column: text}) of the rows, from ``features.identity_to_carry``;
    ``drift(scores)`` (score's): (summary, PSI per column or None), called once every chunk is in."""
    from deepuad.estimators.metrics import binary_metrics  # scikit-learn: imported when needed, not by inspect

    # the scores go to the output chunk by chunk as they come; the float32 copy kept in memory
    # (4 bytes a row) is what the contamination threshold and the metrics need
    scores = np.empty(n_rows, dtype=np.float32)
    with write_artifact(output, "scores", params, inputs) as out:
        stored = _score_dataset(out, n_rows)
        done = 0
        for start, values in chunks:
            require_finite_scores(values, start, inputs)
            scores[start : start + len(values)] = values
            stored[start : start + len(values)] = scores[start : start + len(values)]
            done += len(values)
            progress(description, done, n_rows)
        if done != n_rows:  # the callers cover every row once; np.empty's garbage must never be written
            raise RuntimeError(f"write_scores got {done} scores for {n_rows} rows")
        if threshold is None:
            # on the float32 scores themselves: a float64 copy of 10M rows would cost 80 MB more
            threshold = float(np.quantile(scores, 1.0 - contamination))
        if not np.isfinite(threshold):  # a detector's own threshold (baseline) is not checked elsewhere
            raise DataError(f"the threshold is {threshold}, not a number; nothing was written", inputs.get("features", {}).get("path"))
        is_anomaly = (scores > threshold).astype(np.int8)
        metrics = binary_metrics(y, scores, is_anomaly) if y is not None else {}
        put(out, "is_anomaly", is_anomaly, chunked=True)
        if y is not None:
            put(out, "y", y, chunked=True)
        if identity is not None:
            write_identity(out, *identity)
        out.attrs["threshold"] = float(threshold)
        out.attrs["contamination"] = np.nan if contamination is None else contamination
        out.attrs["metrics"] = json.dumps(metrics)
        if drift is not None:
            drift_summary, column_psi = drift(scores)
            out.attrs["drift"] = json.dumps(drift_summary, allow_nan=False)
            if column_psi is not None:
                put(out, "drift_psi", np.asarray(column_psi, dtype=np.float32))
    summary = {"output": str(output), "rows": n_rows, "threshold": float(threshold), "anomalies_flagged": int(is_anomaly.sum())}
    summary.update(metrics)
    return summary


def describe(f, path) -> dict:
    scores = read_finite_scores(read_array(f, "score"), path)
    return {"summary": {"rows": len(scores), "threshold": finite_threshold(f, path),
                        "flagged": int(np.sum(read_array(f, "is_anomaly"))),
                        "score_min": float(scores.min()), "score_median": float(np.median(scores)),
                        "score_max": float(scores.max()), **attr_json(f, "metrics"),
                        **drift_fields(attr_json(f, "drift") if "drift" in f.attrs else None)},
            **({"drift": attr_json(f, "drift")} if "drift" in f.attrs else {})}


def read(path, scores: bool = True) -> dict:
    """A scores artifact (versions 1 and 2 hold the same fields): its ``threshold`` (DataError if
    not a number), ``contamination`` (None where a threshold was given), ``metrics``, ``drift``
    (None where none was measured: merge-scores, baseline), ``params``, ``inputs`` and
    ``fingerprint``; with ``scores`` also ``score`` (DataError for NaN or infinity),
    ``is_anomaly`` and ``y`` (None without labels)."""
    with open_artifact(path, "scores") as f:
        contamination = float(f.attrs["contamination"])
        content = {"threshold": finite_threshold(f, path), "contamination": None if np.isnan(contamination) else contamination,
                   "metrics": attr_json(f, "metrics"), "drift": attr_json(f, "drift") if "drift" in f.attrs else None,
                   "params": params_of(f), "inputs": inputs_of(f), "fingerprint": str(f.attrs["fingerprint"])}
        if scores:
            content.update(score=read_finite_scores(read_array(f, "score"), path), is_anomaly=read_array(f, "is_anomaly"),
                           y=read_array(f, "y") if "y" in f else None)
    return content


def read_drift(path) -> dict | None:
    """The drift summary a scores file stores (see ``deepuad.estimators.drift.summary``), or
    None where none was measured (``read``'s)."""
    return read(path, scores=False)["drift"]


def drift_fields(drift: dict | None) -> dict:
    """The flat summary fields of a stored drift summary (score's and inspect's tables, --json)."""
    if drift is None:
        return {}
    if not drift.get("measured"):
        return {"drift": "not measured: " + str(drift.get("reason"))}
    top = ", ".join(f"{c['column']} {c['psi']:.3g}" for c in drift["columns"][:3])
    return {"drift_max_psi": drift["max_psi"], "drift_columns": top, "drift_score_psi": drift["score_psi"]}


# what DriftMeasure (score) writes: a measurement, or why none was made
PSI = Number(0)
DRIFT = Either((
    Record({"measured": Const(True), "max_psi": PSI, "score_psi": PSI,
            "columns": Seq(Record({"column": Text(), "feature": Text(), "psi": PSI}, required=("column", "feature", "psi")))},
           required=("measured", "max_psi", "score_psi", "columns")),
    Record({"measured": Const(False), "reason": Text()}, required=("measured", "reason")),
))


# NaN or infinite scores and thresholds are unusable data, refused with exit 4 by
# read_finite_scores and finite_threshold (docs/exit-codes.md), so they are declared possible here
SCORE = Array("f", 1, required=True, values=Number(nan=True, infinite=True))
LABELS = Array("iub", 1, values=Number(0, 1))
KIND = register(Kind(
    "scores", describe=describe,
    datasets={"score": SCORE, "is_anomaly": Array("iub", 1, required=True, values=Number(0, 1)), "y": LABELS,
              "ids": Array("OSiu", 1), f"{ID_COLUMNS}/*": Array("O", 1, length="dim:score:0"),
              "drift_psi": Array("f", 1, values=Number(0, nan=True))},
    # threshold, contamination and metrics: in every scores file deepuad wrote
    attrs={"threshold": Attr(Number(nan=True, infinite=True), required=True),
           "contamination": Attr(Number(0, MAX_CONTAMINATION, low_open=True, nan=True), required=True),  # NaN: a threshold was given
           "metrics": Attr(Json(Record(other=Nullable(Number(nan=True)))), required=True),
           ID_COLUMNS: Attr(Json(Seq(Text(), max_len=MAX_COLUMNS))),
           "drift": Attr(Json(DRIFT))},
    same_length=[[("score", 0), ("is_anomaly", 0), ("y", 0), ("ids", 0)]],
    descriptions={
        "score": "anomaly score (the model's --score: combined, cosine, ...), higher = more anomalous",
        "is_anomaly": "1 where score > threshold",
        "drift_psi": "population stability index of each column of X against the model's training data (drift)",
        "y": "ground truth, 1 = anomaly; used only for evaluation, never by the algorithm",
    },
))
