"""The features artifact: the encoded data matrix X, optional ground truth y, and the fitted
encoding that ``extract --like`` reuses. Written by ``extract`` (``write_features``); read by
every later stage through ``open_features``.

Beside X, what identifies each row and is not a feature: ``ids`` (the row's number in the input,
or its file path, ...; a row left out by ``--missing drop`` keeps its number out of the
sequence) and, with ``extract --id-column``, the ``id_columns`` group (one text dataset per
column, in the order of the root attribute ``id_columns``). The scores artifact carries the
same layout, through ``write_identity`` and ``read_identity`` here."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from typing import Iterator

import numpy as np

import h5py

from deepuad.artifacts.envelope import DESCRIPTIONS, Kind, open_artifact, put, put_json, register, write_artifact
from deepuad.artifacts.safe_read import (
    attr_json, counted_bytes, inflation_limit, inflation_rule, INFLATION_VARIABLE, read_array, read_json, read_strings,
)
from deepuad.artifacts.schema import Array, Attr, Flag, Inflation, Json, Number, Record, Seq, Text
from deepuad.errors import DataError, InputError

ID_COLUMNS = "id_columns"  # the group of id columns, and the root attribute naming them
ID_COLUMN_DESCRIPTION = "an id column (extract --id-column): its values as text, one per row; its name is in the root attribute id_columns"
SUMMARY_DROPPED_ROWS = 100  # dropped rows listed in extract's summary (the artifact holds them all)
MAX_COLUMNS = 1 << 20  # columns of X a features file may declare (an image of 3 x 512 x 512 values)


def no_progress(description: str, completed: int, total: int) -> None:
    pass


def describe(f, path) -> dict:
    summary = {"rows": f["X"].shape[0], "features": f["X"].shape[1], "has_labels": "y" in f,
               "unseen_categories": attr_json(f, "unseen_categories")}
    if ID_COLUMNS in f.attrs:
        summary["id_columns"] = attr_json(f, ID_COLUMNS)
    if "dropped_rows" in f:
        summary["rows_dropped"] = int(f["dropped_rows"].shape[0])
    if "y" in f and f["y"].shape[0]:  # no mean of an empty y: a RuntimeWarning and NaN
        summary["anomaly_share"] = float(np.mean(read_array(f, "y")))
    return {"summary": summary}


# the scaler's numbers are bounded so that undoing it (X * scale + offset, top and explain) stays
# finite for any float32 X: a scale is never below 1e-12 (the scalers store 1 for a constant
# column) and no value beyond 1e250 is a column's offset or spread
SCALER_LIMIT = 1e250
COLUMNS = Seq(Text(), max_len=MAX_COLUMNS)
ENCODING = Record(
    {
        "encoding_version": Number(1, 1, integer=True),
        "params": Record(),
        "array": Flag(),
        "offset": Seq(Number(-SCALER_LIMIT, SCALER_LIMIT), length="dim:X:1"),
        "scale": Seq(Number(1e-12, SCALER_LIMIT), length="dim:X:1"),
        "feature_names": Seq(Text(), length="dim:X:1"),
        "numeric_columns": COLUMNS,
        "categorical_columns": COLUMNS,
        "vocabularies": Record(other=Seq(Text(), max_len=MAX_COLUMNS), max_len=MAX_COLUMNS),
    },
    required=("offset", "scale"),
)
ROWS = "dim:X:0"
# X is the one dataset of a features file that may be compressed (extract --compress). Scoring
# takes time in proportion to its rows, so a small file must not declare many: X may declare
# 40 MiB, or 4 times the file's size if that is more, a row counting as 40 columns at least
# (scoring costs about as much per row below that): 262,144 rows, or one per 40 bytes of the
# file (docs/threat-model.md says why these numbers; bench/crafted_cost.py measures what they
# cost at most)
X_INFLATION = Inflation(40 << 20, 4, "keep score and explain busy for minutes", row_bytes=160)

KIND = register(Kind(
    "features", describe=describe,
    datasets={
        "X": Array("f", 2, required=True, inflation=X_INFLATION),  # finiteness: checked as rows are read (as_finite_float32)
        "y": Array("iub", 1, values=Number(0, 1), length=ROWS),
        "feature_names": Array("OS", 1, required=True, length="dim:X:1"),
        "ids": Array("OSiu", 1, length=ROWS),
        "encoding": Array("OS", 0, required=True, json=ENCODING),
        "class_label": Array("OSiu", 1, length=ROWS), "video": Array("OS", 1, length=ROWS), "segment": Array("iu", 1, length=ROWS),
        "dropped_rows": Array("iu", 1, values=Number(0)),
        f"{ID_COLUMNS}/*": Array("O", 1, length=ROWS),
    },
    # encoding, encoding_fingerprint and unseen_categories: in every features file deepuad wrote
    attrs={"encoding_fingerprint": Attr(Text(max_len=128), required=True),
           "unseen_categories": Attr(Json(Record(other=Number(0, integer=True))), required=True),
           ID_COLUMNS: Attr(Json(Seq(Text(), max_len=MAX_COLUMNS)))},
    same_length=[[("X", 0), ("y", 0), ("ids", 0)], [("X", 1), ("feature_names", 0)]],
    descriptions={
        "X": "feature matrix, rows x features, float32, encoded and scaled",
        "y": "ground truth, 1 = anomaly; used only for evaluation, never by the algorithm",
        "feature_names": "name of each column of X",
        "ids": "identifier of each row (row number in the input, file path, ...)",
        "dropped_rows": "extract --missing drop: the input row numbers (as in ids) of the rows left out for a gap",
        "encoding": "JSON: fitted encoding (columns, vocabularies, scaler) for extract --like",
    },
))


def encoding_fingerprint(encoding: dict) -> str:
    return hashlib.sha256(json.dumps(encoding, sort_keys=True).encode()).hexdigest()


def write_identity(f: h5py.Group, ids, id_values: dict[str, np.ndarray] | None) -> None:
    """``ids`` (None: not written) and the id columns ({name: text per row}) of every row."""
    if ids is not None:
        put(f, "ids", ids, chunked=True)
    if id_values:
        group = f.create_group(ID_COLUMNS)
        for position, values in enumerate(id_values.values()):
            put(group, str(position), np.asarray(values, dtype=object), ID_COLUMN_DESCRIPTION)
        f.attrs[ID_COLUMNS] = json.dumps(list(id_values))


def read_identity(f: h5py.File, path, rows=None) -> dict[str, list[str]]:
    """{id column: its text at ``rows`` (all when None)} from a features or scores artifact;
    {} for a file without id columns. InputError unless the group matches the names and X."""
    if ID_COLUMNS not in f.attrs:
        return {}
    names = attr_json(f, ID_COLUMNS)
    group = f.get(ID_COLUMNS)
    n_rows = f["X"].shape[0] if "X" in f else f["score"].shape[0]
    if not isinstance(group, h5py.Group) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise InputError("its id columns are malformed (corrupt?)", path)
    out = {}
    for position, name in enumerate(names):
        dataset = group.get(str(position))
        if not isinstance(dataset, h5py.Dataset) or dataset.shape != (n_rows,) or dataset.dtype.kind != "O":
            raise InputError(f"id column {name!r} is missing or not one text per row (corrupt?)", path)
        values = read_strings(f, f"{ID_COLUMNS}/{position}")
        out[name] = values if rows is None else [values[int(row)] for row in rows]
    return out


def identity_to_carry(f: h5py.File, path) -> tuple | None:
    """(ids or None, {id column: text}) of a features artifact for its scores file, or None
    when there is nothing to carry: no id columns, and ids that are the rows' positions."""
    ids = read_array(f, "ids") if "ids" in f else None
    if ids is not None and ids.dtype.kind in "iu" and np.array_equal(ids, np.arange(len(ids))):
        ids = None  # row i's id is i: the scores file says as much by holding no ids
    id_values = read_identity(f, path)
    if ids is None and not id_values:
        return None
    return ids, {name: np.array(values, dtype=object) for name, values in id_values.items()}


def write_features(output, chunks, encoding: dict, params: dict, inputs: dict, compress=False, progress=no_progress,
                   unseen: dict | None = None, ids=None, extra: dict | None = None, dropped: list | None = None,
                   filled: dict | None = None) -> dict:
    """Stream (X_chunk, y_chunk) or (X_chunk, y_chunk, ids_chunk, {id column: text}) tuples into
    a features artifact; returns the summary.

    ``extra`` maps dataset names to whole arrays stored beside X (e.g. class_label, video).
    ``unseen``, ``dropped`` (arrays of row numbers left out) and ``filled`` ({column: gaps
    filled}) are filled by the chunks as they are read, and stored or summarised after them."""
    feature_names = encoding["feature_names"]
    n_rows, n_anomalies, has_y = 0, 0, None
    id_parts, id_values = [], {}
    with write_artifact(output, "features", params, inputs) as f:
        width = len(feature_names)
        X_out = f.create_dataset(
            "X", shape=(0, width), maxshape=(None, width), dtype=np.float32,
            chunks=(max(1, min(16384, (1 << 20) // (4 * width))), width),  # ~1 MiB chunks
            **({"compression": "gzip", "compression_opts": 4, "shuffle": True} if compress else {}),
        )
        y_out = None
        for X_chunk, y_chunk, *identity in chunks:
            if identity:
                id_parts.append(identity[0])
                for name, values in identity[1].items():
                    id_values.setdefault(name, []).append(values)
            if X_chunk.shape[1] != width:
                raise DataError(f"encoded width {X_chunk.shape[1]} != {width}", inputs["raw"]["path"])
            if not np.isfinite(X_chunk).all():
                raise DataError("scaling produced non-finite values (values too large for float32?)", inputs["raw"]["path"])
            if has_y is None:
                has_y = y_chunk is not None
                if has_y:
                    y_out = f.create_dataset("y", shape=(0,), maxshape=(None,), dtype=np.int8, chunks=(65536,))
            X_out.resize(n_rows + len(X_chunk), axis=0)
            X_out[n_rows:] = X_chunk
            if has_y:
                y_out.resize(n_rows + len(X_chunk), axis=0)
                y_out[n_rows:] = y_chunk
                n_anomalies += int(np.sum(y_chunk))
            n_rows += len(X_chunk)
            progress("encoding rows", n_rows, 0)
        if n_rows == 0:
            raise DataError("no data rows", inputs["raw"]["path"])
        put(f, "feature_names", np.array(feature_names, dtype=object))
        if ids is None:
            ids = np.concatenate(id_parts).astype(np.int64) if id_parts else np.arange(n_rows, dtype=np.int64)
        write_identity(f, ids, {name: np.concatenate(parts) for name, parts in id_values.items()})
        if dropped is not None:
            dropped = np.concatenate(dropped).astype(np.int64) if dropped else np.zeros(0, dtype=np.int64)
            put(f, "dropped_rows", dropped)
        for name, values in (extra or {}).items():
            put(f, name, values)
        put_json(f, "encoding", encoding, DESCRIPTIONS["encoding"])
        f.attrs["encoding_fingerprint"] = encoding_fingerprint(encoding)
        f.attrs["unseen_categories"] = json.dumps(unseen or {})
        _check_readable(f, X_out, inputs["raw"]["path"])
    summary = {"output": str(output), "rows": n_rows, "features": len(feature_names), "labels": bool(has_y)}
    if has_y:
        summary["anomalies"] = n_anomalies
    if unseen:
        summary["unseen_categories"] = unseen
    if id_values:
        summary["id_columns"] = list(id_values)
    if dropped is not None:
        summary["rows_dropped"] = len(dropped)
        summary["dropped_rows"] = [int(row) for row in dropped[:SUMMARY_DROPPED_ROWS]]
    if filled is not None:
        summary["gaps_filled"] = dict(filled)
    return summary


def _check_readable(f: h5py.File, X: h5py.Dataset, source) -> None:
    """DataError naming ``source`` if X declares more than deepuad reads back (``X_INFLATION``:
    compressed too far, or too many rows for the file's size): no command writes a file that the
    next one refuses. Called once every dataset is written (only the fingerprint and
    descriptions follow, a few hundred bytes)."""
    f.flush()
    size, nbytes = f.id.get_filesize(), X.size * X.dtype.itemsize
    declared = counted_bytes(X_INFLATION, X.shape, nbytes)
    if declared <= inflation_limit(X_INFLATION, size):
        return
    rule = inflation_rule(X_INFLATION)
    variable = f"set {INFLATION_VARIABLE}={math.ceil(declared / size)} here and wherever the file is read"
    if declared > nbytes:  # too many rows for the file, with or without `compress`
        raise DataError(f"X's {X.shape[0]:,} rows of {X.shape[1]} columns count as {declared / size:,.0f} times the file's "
                        f"size ({X_INFLATION.row_bytes} bytes a row at least: scoring takes as long per row below "
                        f"{X_INFLATION.row_bytes // 4} columns), more than deepuad reads back ({rule}) with or without "
                        f"`compress`: {variable}", source)
    raise DataError(f"X compresses to {declared / size:,.0f} times the file's size, more than deepuad reads back "
                    f"({rule}): extract it without `compress`, or {variable}", source)


class Features:
    """A features artifact open for reading (``open_features``). Versions 1 and 2 hold the same
    fields, so one reader serves both. ``X``: the whole matrix in memory, the open HDF5 dataset
    (``X="disk"``), or None (``X=None``: names, shapes and a few rows only, ``take``); the other
    fields are read when asked for, while the file is open."""

    def __init__(self, f: h5py.File, path, X):
        self.file, self.path, self.X = f, path, X
        self.n_rows, self.width = f["X"].shape
        self.fingerprint = str(f.attrs["fingerprint"])
        self.encoding_fingerprint = str(f.attrs["encoding_fingerprint"])

    def labels(self, rows: slice = slice(None)) -> np.ndarray | None:
        """y at ``rows``, or None for a file without labels."""
        return read_array(self.file, "y", rows=rows) if "y" in self.file else None

    def ids(self) -> np.ndarray:
        """Every row's id; a file that stores none numbers its rows 0, 1, ..."""
        return read_array(self.file, "ids") if "ids" in self.file else np.arange(self.n_rows)

    def check_finite(self, start: int, stop: int) -> None:
        """DataError unless rows [start, stop) of X are finite, read chunk by chunk."""
        require_finite_rows(self.file["X"], start, stop, self.path)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """X at ``rows`` (any order), float32, DataError if any holds NaN or infinity; only those
        rows are read."""
        from deepuad.estimators.rows import take_rows

        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        X = np.empty((len(rows), self.width), dtype=np.float32)
        if len(rows):
            try:
                X[order] = take_rows(self.file["X"], rows[order])
            except (OSError, ValueError) as error:
                raise InputError(f"X unreadable (corrupt?): {error}", self.path) from None
        return as_finite_float32(X, self.path)

    def column(self, name: str) -> np.ndarray | None:
        """A per-row dataset stored beside X (class_label, video, segment), or None."""
        return read_array(self.file, name) if isinstance(self.file.get(name), h5py.Dataset) else None

    def id_columns(self, rows=None) -> dict[str, list[str]]:
        return read_identity(self.file, self.path, rows)

    def identity_to_carry(self) -> tuple | None:
        return identity_to_carry(self.file, self.path)

    def feature_names(self) -> list[str]:
        return read_strings(self.file, "feature_names")

    def encoding(self) -> dict:
        return read_json(self.file, "encoding")


@contextlib.contextmanager
def open_features(path, X: str | None = "memory", max_bytes: int = 8 << 30) -> Iterator[Features]:
    """The one reader of features artifacts. ``X``: "memory" reads X whole (DataError for NaN or
    infinity); "disk" hands out the open HDF5 dataset, whose rows the caller checks as it reads
    them (``Features.check_finite``): clustering with ``--fit-sample`` reads only its sample and
    assigns every row in chunks, and each process of a multi-process training reads only its own
    rows, so that data larger than memory can be used; None reads no X. DataError for a file
    without rows or columns, unless ``X`` is None."""
    if X not in ("memory", "disk", None):
        raise ValueError(f"X must be 'memory', 'disk' or None, got {X!r}")
    with open_artifact(path, "features") as f:
        dataset = f["X"]
        if X is not None and (dataset.shape[0] == 0 or dataset.shape[1] == 0):
            raise DataError(f"X is empty (shape {dataset.shape}): no {'rows' if dataset.shape[0] == 0 else 'columns'}", path)
        matrix = as_finite_float32(read_array(f, "X", max_bytes), path) if X == "memory" else dataset if X == "disk" else None
        yield Features(f, path, matrix)


def read_features(path, max_bytes: int = 8 << 30) -> dict:
    """X (in memory), y and fingerprints of a features artifact (``open_features``'s, read whole)."""
    with open_features(path, max_bytes=max_bytes) as features:
        return {"X": features.X, "y": features.labels(), "fingerprint": features.fingerprint,
                "encoding_fingerprint": features.encoding_fingerprint}


def require_finite_rows(X, start: int, stop: int, path, chunk: int = 65536) -> None:
    """DataError unless rows [start, stop) of an on-disk X are finite, read chunk by chunk."""
    for first in range(start, stop, chunk):
        as_finite_float32(X[first : min(first + chunk, stop)], path, first)


def as_finite_float32(X, path, first_row: int = 0) -> np.ndarray:
    """X as float32, or DataError if it holds NaN, infinity, or a value beyond float32's range
    (|x| > 3.4e38: a float64 file whose values would turn into inf, and the scores into NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        X32 = np.asarray(X, dtype=np.float32)
    finite = np.isfinite(X32)
    if not finite.all():
        bad_rows = ~finite.all(axis=1) if X32.ndim == 2 else ~finite
        first = first_row + int(np.argmax(bad_rows))
        raise DataError(f"X has {int(bad_rows.sum())} row(s) with NaN or infinite values, or values beyond float32's "
                        f"range (first: row {first})", path)
    return X32
