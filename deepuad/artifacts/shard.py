"""The scores_shard artifact: the scores (and y) of one contiguous row range of a features
file (``score --shard I/N``). Its attributes shard_index, shard_count, row_start, row_stop,
n_rows_total and batch_rows must agree with ``shard_rows``, which opening it checks.
``merge-scores`` turns a complete set of shards into one ordinary scores artifact."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from deepuad.artifacts.envelope import inputs_of, Kind, open_artifact, params_of, put, register, write_artifact
from deepuad.artifacts.safe_read import read_array
from deepuad.artifacts.schema import Attr, Json, Nullable, Number, Record, Text
from deepuad.artifacts.scores import LABELS, SCORE, read_finite_scores, require_finite_scores, _score_dataset
from deepuad.errors import InputError
from deepuad.estimators.params import MAX_CONTAMINATION, is_contamination


def shard_rows(n_rows: int, batch_rows: int, index: int, count: int) -> tuple[int, int]:
    """Rows [start, stop) of shard ``index`` of ``count``: the ceil(n_rows / batch_rows) scoring
    batches split into ``count`` near-equal contiguous groups. Cutting only at batch boundaries
    puts every row in the same batch as an unsharded run, so its score is bit-identical (a
    matrix product may round differently in a batch of another size). A shard is empty when
    there are fewer batches than shards."""
    batches = -(-n_rows // batch_rows)
    return min(index * batches // count * batch_rows, n_rows), min((index + 1) * batches // count * batch_rows, n_rows)


def _check_shard(f: h5py.File, path: Path) -> None:
    """A shard's row range must be the one shard_rows gives for its index, count, total and
    batch size: merge-scores relies on it to find gaps and overlaps."""
    names = ("shard_index", "shard_count", "row_start", "row_stop", "n_rows_total", "batch_rows")  # declared required
    index, count, start, stop, total, batch_rows = (int(f.attrs[name]) for name in names)
    if not (0 <= index < count and total >= 1 and batch_rows >= 1):
        raise InputError(f"shard {index} of {count}, {total} rows in batches of {batch_rows}: not a valid shard (corrupt?)", path)
    if (start, stop) != shard_rows(total, batch_rows, index, count):
        raise InputError(f"rows {start}..{stop} are not the rows of shard {index} of {count} (corrupt?)", path)
    if f["score"].shape[0] != stop - start:
        raise InputError(f"dataset 'score' has {f['score'].shape[0]} rows but the shard covers {stop - start} (corrupt?)", path)


def write_shard(output, params, inputs, chunks, y, shard, rows, n_rows_total, batch_rows, progress) -> dict:
    """A scores_shard artifact: the scores (and y) of rows [start, stop) and where they belong.
    No threshold, is_anomaly or metrics: those need every row, and merge-scores derives them."""
    (index, count), (start, stop) = shard, rows
    with write_artifact(output, "scores_shard", params, inputs) as out:
        stored = _score_dataset(out, stop - start)
        done = 0
        for begin, values in chunks:
            require_finite_scores(values, begin, inputs)
            stored[begin : begin + len(values)] = values
            done += len(values)
            progress(f"scoring shard {index}/{count}", done, stop - start)
        if y is not None:
            put(out, "y", y, chunked=True)
        out.attrs.update(shard_index=index, shard_count=count, row_start=start, row_stop=stop, n_rows_total=n_rows_total,
                         batch_rows=batch_rows)
    return {"output": str(output), "shard": f"{index}/{count}", "rows": stop - start, "row_start": start, "row_stop": stop,
            "rows_total": n_rows_total}


def read(path, scores: bool = False) -> dict:
    """A scores_shard artifact (versions 1 and 2 hold the same fields): where its rows belong,
    which run made it (model and features), the options it was scored with, its y (None without
    labels) and, with ``scores``, its ``score`` (DataError for NaN or infinity)."""
    with open_artifact(path, "scores_shard") as f:
        header = {name: int(f.attrs[attr]) for name, attr in (
            ("index", "shard_index"), ("count", "shard_count"), ("row_start", "row_start"), ("row_stop", "row_stop"),
            ("n_rows_total", "n_rows_total"), ("batch_rows", "batch_rows"))}
        params, inputs = params_of(f), inputs_of(f)
        y = read_array(f, "y") if "y" in f else None
        if scores:
            header["score"] = read_finite_scores(read_array(f, "score"), path)
    for role in ("model", "features"):
        if not (isinstance(inputs.get(role), dict) and isinstance(inputs[role].get("fingerprint"), str)):
            raise InputError(f"inputs do not name the {role} it was scored with (corrupt?)", path)
    contamination, threshold = params["contamination"], params["threshold"]
    # one of the two, as score's options allow (is_contamination); a bad one here is a corrupt
    # file (exit 3), not a bad option
    if (threshold is None) == (contamination is None) or (threshold is None and not is_contamination(contamination)):
        raise InputError("params hold no valid contamination or threshold (corrupt?)", path)
    return {**header, "path": str(path), "inputs": inputs, "contamination": contamination, "threshold": threshold,
            "device": str(params["device"]), "y": y}


def describe(f, path) -> dict:
    scores = read_finite_scores(read_array(f, "score"), path)
    summary = {"shard": f"{int(f.attrs['shard_index'])}/{int(f.attrs['shard_count'])}", "rows": len(scores),
               "row_start": int(f.attrs["row_start"]), "row_stop": int(f.attrs["row_stop"]),
               "rows_total": int(f.attrs["n_rows_total"]), "batch_rows": int(f.attrs["batch_rows"]),
               "has_labels": "y" in f}
    if len(scores):  # a shard beyond the last scoring batch is empty
        summary.update(score_min=float(scores.min()), score_median=float(np.median(scores)), score_max=float(scores.max()))
    return {"summary": summary}


COUNT = Number(0, integer=True)
# what score records and merge-scores reads back: the options the shard was scored with
PARAMS = Record({"contamination": Nullable(Number(0, MAX_CONTAMINATION, low_open=True)), "threshold": Nullable(Number()),
                 "device": Text()}, required=("contamination", "threshold", "device"))
KIND = register(Kind(
    "scores_shard", check=_check_shard, describe=describe,
    datasets={"score": SCORE, "y": LABELS},
    attrs={"shard_index": Attr(COUNT, required=True), "shard_count": Attr(Number(1, integer=True), required=True),
           "row_start": Attr(COUNT, required=True), "row_stop": Attr(COUNT, required=True),
           "n_rows_total": Attr(Number(1, integer=True), required=True),
           "batch_rows": Attr(Number(1, integer=True), required=True), "params": Attr(Json(PARAMS), required=True)},
    same_length=[[("score", 0), ("y", 0)]],
))
