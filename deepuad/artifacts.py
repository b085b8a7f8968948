"""The on-disk format: every HDF5 artifact deepuad reads or writes goes through this module.

Every artifact's root carries these attributes:

    deepuad_kind            "features" | "clusters" | "model" | "scores"
    deepuad_schema_version  int, SCHEMA_VERSION when written; newer files are refused
    deepuad_version         version of deepuad that wrote it
    created                 UTC time, ISO 8601
    params                  JSON: the full parameter set of the stage that wrote it
    inputs                  JSON: {role: {"path": ..., "fingerprint": ...}} of the artifacts it was made from
    fingerprint             SHA-256 over the content of every dataset (name, dtype, shape, bytes)

and every dataset has a ``description`` attribute saying what it holds. The fingerprint is
our "hash of the inputs": it hashes content, not the file, so re-writing identical data
(with a new timestamp) does not make downstream artifacts stale, while any change to the
data does. Files are written to a temporary name in the target folder and renamed into place
only when complete, so a crash never leaves a half-written file under the real name.

Nothing here unpickles: all content is numeric/string datasets and JSON attributes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from deepuad import __version__
from deepuad.errors import InputError, OutputError, StaleError

SCHEMA_VERSION = 1
KINDS = ("features", "clusters", "model", "scores")
HASH_CHUNK_BYTES = 64 << 20

# kind -> {dataset: (ndim, dtype kinds allowed, required)}. Shapes across datasets are checked
# by the readers below (e.g. len(y) == len(X)).
SCHEMA: dict[str, dict[str, tuple[int, str, bool]]] = {
    "features": {"X": (2, "f", True), "y": (1, "iub", False), "feature_names": (1, "OS", True), "ids": (1, "OSiu", False)},
    "clusters": {
        "assignment": (1, "i", True), "size": (1, "iu", True), "variance": (1, "f", True),
        "accepted": (1, "b", True), "selected": (1, "iu", True),
    },
    "model": {"epoch_losses": (1, "f", True), "rng_state": (1, "u", True), "iterations/0/selected": (1, "iu", True)},
    "scores": {"score": (1, "f", True), "is_anomaly": (1, "iub", True), "y": (1, "iub", False)},
}

DESCRIPTIONS = {
    "X": "feature matrix, rows x features, float32, encoded and scaled",
    "y": "ground truth, 1 = anomaly; used only for evaluation, never by the algorithm",
    "feature_names": "name of each column of X",
    "ids": "identifier of each row (row number in the input, file path, ...)",
    "encoding": "JSON: fitted encoding (columns, vocabularies, scaler) for extract --like",
    "assignment": "cluster of each row, -1 = unclustered (never selected)",
    "size": "rows per cluster",
    "variance": "mean squared distance of a cluster's members to its centroid",
    "accepted": "cluster kept in the initial training set",
    "selected": "indices of the rows in the training set",
    "score": "anomaly score h(x) = 1 - cos(x, x_hat), higher = more anomalous",
    "is_anomaly": "1 where score > threshold",
    "epoch_losses": "mean training loss of each epoch",
    "rng_state": "state of the shuffling RNG, for exact resume",
}


def fingerprint_of(path: str | Path) -> str:
    with open_artifact(path) as f:
        return f.attrs["fingerprint"]


# --------------------------------------------------------------------------- writing
def check_output_path(path: str | Path) -> Path:
    """The output path, or OutputError if it cannot be written (before any work is done)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError("is a directory, expected a file name", path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"folder {folder} is not writable", path)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError("exists and is not writable", path)
    return path


@contextlib.contextmanager
def write_artifact(path: str | Path, kind: str, params: dict, inputs: dict | None = None) -> Iterator[h5py.File]:
    """Yield an HDF5 file open under a temporary name; on success it is fingerprinted,
    flushed to disk and renamed to ``path``; on any error the temporary file is removed
    and the old ``path`` (if any) is left untouched."""
    assert kind in KINDS
    path = check_output_path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with h5py.File(tmp, "w", libver=("earliest", "v112")) as f:
            f.attrs["deepuad_kind"] = kind
            f.attrs["deepuad_schema_version"] = SCHEMA_VERSION
            f.attrs["deepuad_version"] = __version__
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["params"] = json.dumps(params, sort_keys=True, default=_json_default)
            f.attrs["inputs"] = json.dumps(inputs or {}, sort_keys=True)
            yield f
            for name, dataset in _datasets(f):
                if "description" not in dataset.attrs and name.split("/")[-1] in DESCRIPTIONS:
                    dataset.attrs["description"] = DESCRIPTIONS[name.split("/")[-1]]
            f.attrs["fingerprint"] = content_fingerprint(f)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove_quietly(tmp)
        if error.errno == errno.ENOSPC or "No space" in str(error):
            raise OutputError("no space left on the device; nothing was written", path) from None
        raise OutputError(f"cannot write: {error.strerror or error}", path) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def put(group: h5py.Group, name: str, data, description: str | None = None, chunked: bool = False) -> h5py.Dataset:
    """Write one dataset (strings as UTF-8 variable-length) with its description."""
    data = np.asarray(data)
    if data.dtype.kind in "UO":
        data = data.astype(object)
        dataset = group.create_dataset(name, data=data, dtype=h5py.string_dtype())
    else:
        chunks = (min(len(data), 65536), *data.shape[1:]) if chunked and data.ndim >= 1 and len(data) else None
        dataset = group.create_dataset(name, data=data, chunks=chunks)
    if description:
        dataset.attrs["description"] = description
    return dataset


def put_json(group: h5py.Group, name: str, value, description: str) -> None:
    """A JSON document as a scalar string dataset (attributes are limited to 64 KiB)."""
    dataset = group.create_dataset(name, data=json.dumps(value, sort_keys=True, default=_json_default), dtype=h5py.string_dtype())
    dataset.attrs["description"] = description


def _datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []
    f.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found, key=lambda item: item[0])


def content_fingerprint(f: h5py.File) -> str:
    """SHA-256 over every dataset's name, dtype, shape and bytes, read in bounded chunks."""
    digest = hashlib.sha256()
    for name, dataset in _datasets(f):
        digest.update(f"{name}|{dataset.dtype.str}|{dataset.shape}\n".encode())
        if dataset.shape == ():
            value = dataset[()]
            digest.update(value if isinstance(value, bytes) else np.asarray(value).tobytes())
            continue
        if dataset.dtype.kind == "O":
            for value in dataset[()]:
                digest.update(value if isinstance(value, bytes) else str(value).encode())
                digest.update(b"\0")
            continue
        row_bytes = max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64)))
        step = max(1, HASH_CHUNK_BYTES // row_bytes)
        for start in range(0, dataset.shape[0], step):
            digest.update(np.ascontiguousarray(dataset[start : start + step]).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- reading
@contextlib.contextmanager
def open_artifact(path: str | Path, kind: str | None = None) -> Iterator[h5py.File]:
    """Open a deepuad artifact read-only, checking it is one, of ``kind``, of a schema we
    understand, with the datasets its kind requires; InputError otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a directory, expected an HDF5 file", path)
    if path.stat().st_size == 0:
        raise InputError("is empty", path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as error:
        raise InputError(f"cannot read: {error}", path) from None
    if not is_hdf5:
        raise InputError("is not an HDF5 file (was it written by deepuad?)", path)
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"cannot open as HDF5 (corrupt or truncated?): {error}", path) from None
    with f:
        try:
            found_kind = _str_attr(f, "deepuad_kind")
            version = int(f.attrs["deepuad_schema_version"])
        except (KeyError, ValueError, TypeError, OSError):
            raise InputError("is an HDF5 file but not a deepuad artifact (no deepuad_kind)", path) from None
        if kind is not None and found_kind != kind:
            raise InputError(f"is a {found_kind} artifact, expected {kind}", path)
        if version > SCHEMA_VERSION:
            raise InputError(
                f"has schema version {version}, newer than this deepuad understands ({SCHEMA_VERSION}); upgrade deepuad", path
            )
        for name, (ndim, dtype_kinds, required) in SCHEMA.get(found_kind, {}).items():
            _check_dataset(f, path, name, ndim, dtype_kinds, required)
        yield f


def _str_attr(f: h5py.File, name: str) -> str:
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_dataset(f: h5py.File, path: Path, name: str, ndim: int, dtype_kinds: str, required: bool) -> None:
    try:
        dataset = f.get(name)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"dataset '{name}' is unreadable: {error}", path) from None
    if dataset is None:
        if required:
            raise InputError(f"dataset '{name}' is missing", path)
        return
    if not isinstance(dataset, h5py.Dataset):
        raise InputError(f"'{name}' is not a dataset", path)
    if dataset.ndim != ndim:
        raise InputError(f"dataset '{name}' has {dataset.ndim} dimensions, expected {ndim}", path)
    if dataset.dtype.kind not in dtype_kinds:
        raise InputError(f"dataset '{name}' has dtype {dataset.dtype}, expected kind {dtype_kinds!r}", path)


def read_array(f: h5py.File, name: str, max_bytes: int = 8 << 30) -> np.ndarray:
    """Read a whole dataset, refusing absurd declared sizes (a corrupt file must not OOM us)."""
    dataset = f[name]
    nbytes = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
    if nbytes > max_bytes:
        raise InputError(f"dataset '{name}' declares {nbytes / 2**30:.1f} GiB; refusing to load it whole", f.filename)
    try:
        return dataset[()]
    except (OSError, ValueError, TypeError) as error:
        raise InputError(f"dataset '{name}' is unreadable (corrupt?): {error}", f.filename) from None


def read_strings(f: h5py.File, name: str) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in read_array(f, name)]


def read_json(f: h5py.File, name: str):
    """A JSON document stored as a scalar string dataset (see put_json)."""
    return _parse_json(read_array(f, name), f.filename, name)


def attr_json(f: h5py.File, name: str):
    """A JSON document stored as an attribute."""
    if name not in f.attrs:
        raise InputError(f"attribute '{name}' is missing", f.filename)
    return _parse_json(f.attrs[name], f.filename, name)


def _parse_json(raw, filename, name):
    raw = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise InputError(f"'{name}' is not valid JSON (corrupt?)", filename) from None


def inputs_of(f: h5py.File) -> dict:
    return attr_json(f, "inputs")


def params_of(f: h5py.File) -> dict:
    return attr_json(f, "params")


def require_made_from(f: h5py.File, role: str, upstream_path: str | Path, upstream_fingerprint: str, force: bool = False) -> None:
    """StaleError unless artifact ``f`` was made from the upstream artifact with this fingerprint."""
    recorded = inputs_of(f).get(role, {}).get("fingerprint")
    if recorded != upstream_fingerprint and not force:
        raise StaleError(
            f"was made from a different {role} file than {upstream_path} (fingerprint {str(recorded)[:12]} vs "
            f"{upstream_fingerprint[:12]}); re-run the earlier stage or pass --force",
            f.filename,
        )
