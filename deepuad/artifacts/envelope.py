"""The envelope every artifact shares, and the registry of artifact kinds.

Every artifact's root carries these attributes:

    deepuad_kind            "features" | "clusters" | "model" | "scores" | "scores_shard"
    deepuad_schema_version  int, SCHEMA_VERSION when written; older ones from OLDEST_SCHEMA_VERSION on
                            are read through their kind's reader for that version; newer ones are refused
    deepuad_version         version of deepuad that wrote it
    created                 UTC time, ISO 8601
    params                  JSON: the full parameter set of the stage that wrote it
    inputs                  JSON: {role: {"path": ..., "fingerprint": ...}} of the artifacts it was made from
    fingerprint             SHA-256 over the content of every dataset (name, dtype, shape, bytes)

and every dataset has a ``description`` attribute saying what it holds. The fingerprint is
our "hash of the inputs": it hashes content, not the file, so re-writing identical data
(with a new timestamp) does not make downstream artifacts stale, while any change to the
data does. ``write_artifact`` writes through ``atomic`` (temporary name, rename, folder lock);
``open_artifact`` checks a file with ``safe_read`` and against its kind's schema.

Each kind (features, clusters, model, scores, scores_shard) is one module of this package
that declares its ``Kind`` (datasets, attributes, lengths that must agree, descriptions, extra
checks) with ``register`` and holds its writer, reader and ``describe`` beside it. Adding a
kind, or a dataset to one, touches that module only.

A file of an older schema version is read by its kind's reader for that version, which supplies
what such files may lack (the value the files made without it were made with) and hands out the
same structure as the reader of the current version, which supplies nothing: what the current
version declares is there, or the file is refused naming it. ``Kind.v1_attrs`` declares the
attributes whose declaration differs in version-1 files (what they may lack).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from deepuad import __version__
from deepuad.artifacts.atomic import (
    check_output_path, _discard, _folder_lock, _fsync_folder, _interrupts_held_in_driver, _output_error, _SafeFile,
    _temporary_name,
)
from deepuad.artifacts import schema
from deepuad.artifacts.safe_read import (
    attr_json, check_attribute, check_inflation, check_self_contained, _h5py_errors_as_input_errors, _one_line, _str_attr,
)
from deepuad.artifacts.schema import Array, Attr, Json, Record, Text
from deepuad.errors import DeepUADError, InputError, StaleError
from deepuad.signals import placing_output, raise_held_back


@dataclass(frozen=True)
class Kind:
    """What an artifact of one kind holds, checked by ``open_artifact``.

    ``datasets``: name (or a pattern: "weights/*") -> its ``schema.Array`` declaration (a
    ``Derived`` table for declarations that follow a registry: made when a file is checked);
    ``attrs``: root attribute -> its ``schema.Attr`` declaration; ``same_length``: groups of
    (dataset, axis) whose lengths must agree (the readers index one by the other);
    ``descriptions``: the text stored with each dataset (by full name or last path component);
    ``check(f, path)``: relations between fields that a declaration cannot say, InputError if
    not met; ``describe(f, path)``: the kind's part of ``inspect``; ``bounds``: name -> a bound
    derived from fields checked before (``schema``'s "bound:NAME"); ``v1_attrs``: the declarations
    of root attributes that a version-1 file may hold in another form (lacking what it adds)."""

    name: str
    datasets: Mapping[str, Array]
    attrs: dict[str, Attr]
    same_length: list[list[tuple[str, int]]] = field(default_factory=list)
    descriptions: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[h5py.File, Path], None] | None = None
    describe: Callable[[h5py.File, Path], dict] | None = None
    bounds: dict[str, Callable[[h5py.File], float | None]] = field(default_factory=dict)
    v1_attrs: dict[str, Attr] = field(default_factory=dict)

    def attrs_of(self, version: int) -> dict[str, Attr]:
        """Every root attribute's declaration in a file of schema ``version``."""
        return {**ROOT_ATTRS, **self.attrs, **(self.v1_attrs if version == 1 else {})}


class Derived(Mapping):
    """A table of declarations (datasets, descriptions) that ``make()`` makes afresh whenever it is
    read, for a kind whose fields follow a registry that may grow after the kind registers: a
    model's score parts (``parts.PARTS``), whose arrays a part registered later declares for the
    next file written or checked."""

    def __init__(self, make: Callable[[], dict]):
        self.make = make

    def __getitem__(self, name):
        return self.make()[name]

    def __iter__(self):
        return iter(self.make())

    def __len__(self) -> int:
        return len(self.make())

    def items(self):
        return self.make().items()

    def values(self):
        return self.make().values()


# kind name -> Kind, in the order the kind modules register (deepuad.artifacts imports them all)
KINDS: dict[str, Kind] = {}
# dataset name (full, or its last path component) -> description, over every kind (as each kind
# describes its datasets when it registers: ``description`` also reads a kind's derived ones)
DESCRIPTIONS: dict[str, str] = {}


def register(kind: Kind) -> Kind:
    for name, text in kind.descriptions.items():
        if DESCRIPTIONS.setdefault(name, text) != text:
            raise ValueError(f"dataset '{name}' is described differently by two kinds")
    KINDS[kind.name] = kind
    schema.DATASETS[kind.name] = kind.datasets
    schema.BOUNDS[kind.name] = kind.bounds
    return kind


def description(kind: str, name: str) -> str | None:
    """The description stored with dataset ``name`` of a ``kind`` artifact: the one given for its
    full name ("scorer/forest/left"), else for its last path component ("selected"); the kind's
    own first, then any kind's."""
    for key in (name, name.split("/")[-1]):
        for table in (KINDS[kind].descriptions, DESCRIPTIONS):
            if key in table:
                return table[key]
    return None


# the version every artifact is written with; OLDEST_SCHEMA_VERSION onwards are read (schema_version)
SCHEMA_VERSION = 2
OLDEST_SCHEMA_VERSION = 1
HASH_CHUNK_BYTES = 64 << 20


# the attributes every artifact carries, whatever its kind: "inputs" maps a role ("features",
# "model", "raw", ...) to the path and fingerprint of the file it was made from
INPUTS = Record(other=Record({"path": Text(), "fingerprint": Text(max_len=128), "sha256": Text(max_len=128)}))
ROOT_ATTRS = {"fingerprint": Attr(Text(max_len=128), required=True), "params": Attr(Json(Record()), required=True),
              "inputs": Attr(Json(INPUTS), required=True), "deepuad_version": Attr(Text(max_len=128), required=True),
              "created": Attr(Text(max_len=128), required=True)}


def schema_version(f: h5py.File) -> int:
    """The schema version of an artifact ``open_artifact`` opened: its kind's readers dispatch on it."""
    return int(f.attrs["deepuad_schema_version"])


def fingerprint_of(path: str | Path) -> str:
    with open_artifact(path) as f:
        return f.attrs["fingerprint"]


@contextlib.contextmanager
def write_artifact(path: str | Path, kind: str, params: dict, inputs: dict | None = None) -> Iterator[h5py.File]:
    """Yield an HDF5 file open under a temporary name; on success it is fingerprinted,
    flushed to disk and renamed to ``path``; on any error the temporary file is removed
    and the old ``path`` (if any) is left untouched."""
    assert kind in KINDS
    path = check_output_path(path)
    with _folder_lock(path):
        yield from _write_locked(path, kind, params, inputs)


def _write_locked(path: Path, kind: str, params: dict, inputs: dict | None):
    tmp = _temporary_name(path)
    handle = None
    try:
        handle = _SafeFile(tmp)
        with _interrupts_held_in_driver(), h5py.File(handle, "w", libver=("earliest", "v112")) as f:
            f.attrs["deepuad_kind"] = kind
            f.attrs["deepuad_schema_version"] = SCHEMA_VERSION
            f.attrs["deepuad_version"] = __version__
            f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f.attrs["params"] = json.dumps(params, sort_keys=True, default=_json_default)
            f.attrs["inputs"] = json.dumps(inputs or {}, sort_keys=True)
            yield f
            handle.check()  # a failed write: stop before reading back what never reached the disk
            datasets = _datasets(f)  # walked once: the descriptions add attributes, not datasets
            for name, dataset in datasets:
                text = description(kind, name)
                if "description" not in dataset.attrs and text is not None:
                    dataset.attrs["description"] = text
            f.attrs["fingerprint"] = content_fingerprint(f, datasets)
        handle.check()  # closing flushes HDF5's caches: more writes that may have failed
        os.fsync(handle.raw.fileno())
        handle.raw.close()
        raise_held_back()  # a Ctrl-C or SIGTERM held back while HDF5 ran: the old output stays
        placing_output()
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as error:
        _discard(handle, tmp)
        raise _output_error(handle.error if handle is not None and handle.error else error, path) from None
    except BaseException as error:
        _discard(handle, tmp)
        if handle is not None and handle.error is not None and not isinstance(error, (DeepUADError, KeyboardInterrupt)):
            # HDF5 read back zeros where a write had failed and choked on them: report the cause
            raise _output_error(handle.error, path) from None
        raise


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


def content_fingerprint(f: h5py.File, datasets: list[tuple[str, h5py.Dataset]] | None = None) -> str:
    """SHA-256 over every dataset's name, dtype, shape and bytes, read in bounded chunks
    (``datasets``: ``_datasets(f)``, when the caller has it already)."""
    digest = hashlib.sha256()
    for name, dataset in datasets if datasets is not None else _datasets(f):
        shape, dtype = dataset.shape, dataset.dtype  # each h5py property access is an HDF5 call: read once
        digest.update(f"{name}|{dtype.str}|{shape}\n".encode())
        if shape == ():
            value = dataset[()]
            digest.update(value if isinstance(value, bytes) else np.asarray(value).tobytes())
            continue
        if dtype.kind == "O":
            for value in dataset[()]:
                digest.update(value if isinstance(value, bytes) else str(value).encode())
                digest.update(b"\0")
            continue
        row_bytes = max(1, dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
        step = max(1, HASH_CHUNK_BYTES // row_bytes)
        for start in range(0, shape[0], step):
            digest.update(np.ascontiguousarray(dataset[start : start + step]).tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def open_artifact(path: str | Path, kind: str | None = None) -> Iterator[h5py.File]:
    """Open a deepuad artifact read-only, checking it is one, of ``kind``, of a schema we
    understand, with the datasets and attributes its kind requires; InputError otherwise.
    An error HDF5 raises while the caller reads the open file (a corrupt block) is an
    InputError naming the file too."""
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("no such file", path) from None
    except OSError as error:  # a name too long, a loop of links, no permission on a folder
        raise InputError(f"cannot read: {error.strerror or error}", path) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError("is a directory, expected an HDF5 file", path)
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device: HDF5 would block or read forever
        raise InputError("is not a regular file (a device, FIFO or socket)", path)
    if info.st_size == 0:
        raise InputError("is empty", path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as error:
        raise InputError(f"cannot read: {error}", path) from None
    if not is_hdf5:
        raise InputError("is not an HDF5 file (was it written by deepuad?)", path)
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as error:
        raise InputError(f"cannot open as HDF5 (corrupt or truncated?): {_one_line(error)}", path) from None
    with f, _h5py_errors_as_input_errors(path):
        check_self_contained(f, path)
        try:
            found_kind = _str_attr(f, "deepuad_kind")
            version = int(f.attrs["deepuad_schema_version"])
        except (KeyError, ValueError, TypeError, OSError, RuntimeError):
            raise InputError("is an HDF5 file but not a deepuad artifact (no deepuad_kind)", path) from None
        if found_kind not in KINDS:
            raise InputError(f"has an unknown deepuad_kind {found_kind[:40]!r} (corrupt?)", path)
        if kind is not None and found_kind != kind:
            hint = "; join all shards with 'deepuad merge-scores' first" if (found_kind, kind) == ("scores_shard", "scores") else ""
            raise InputError(f"is a {found_kind} artifact, expected {kind}{hint}", path)
        if version > SCHEMA_VERSION:
            raise InputError(
                f"has schema version {version}, newer than this deepuad understands ({SCHEMA_VERSION}); upgrade deepuad", path
            )
        if version < OLDEST_SCHEMA_VERSION:
            raise InputError(f"has schema version {version}, which no deepuad writes (corrupt?)", path)
        spec = KINDS[found_kind]
        resolve = schema.resolver(f)
        for name, attr in spec.attrs_of(version).items():
            check_attribute(f, path, name, attr, resolve)
        _check_datasets(f, path, spec, resolve)
        _check_lengths(f, path, spec)
        if spec.check is not None:
            spec.check(f, path)
        yield f


def _check_datasets(f: h5py.File, path: Path, spec: Kind, resolve) -> None:
    """Every dataset against its declaration (dtype kind, rank, lengths: metadata only), every
    required one present, and what they all declare bounded by the file's size (``check_inflation``)."""
    every = [(name, dataset, schema.declared(spec.datasets, name)) for name, dataset in _datasets(f)]
    declared = [item for item in every if item[2] is not None]
    try:
        for name, dataset, array in declared:  # every rank first: lengths refer to other datasets' axes
            schema.check_array_shape(array, dataset, name)
        for name, dataset, array in declared:
            schema.check_array_length(array, dataset, name, resolve)
    except schema.SchemaError as error:
        raise InputError(f"dataset {error} (corrupt or crafted?)", path) from None
    for name, declared in spec.datasets.items():
        if declared.required and "*" not in name:
            if name not in f:
                raise InputError(f"dataset '{name}' is missing", path)
            if not isinstance(f[name], h5py.Dataset):
                raise InputError(f"'{name}' is not a dataset", path)
    check_inflation(path, every)


def _check_lengths(f: h5py.File, path: Path, spec: Kind) -> None:
    for group in spec.same_length:
        present = [(name, axis, f[name].shape[axis]) for name, axis in group if name in f]
        for name, axis, length in present[1:]:
            first, first_axis, first_length = present[0]
            if length != first_length:
                raise InputError(f"dataset '{name}' has {length} {'rows' if axis == 0 else 'entries'} but '{first}' has "
                                 f"{first_length} {'rows' if first_axis == 0 else 'columns'} (corrupt?)", path)


def inputs_of(f: h5py.File) -> dict:
    return attr_json(f, "inputs")


def params_of(f: h5py.File) -> dict:
    return attr_json(f, "params")


def require_made_from(inputs: dict, path, role: str, upstream_path: str | Path, upstream_fingerprint: str,
                      force: bool = False) -> None:
    """StaleError unless the artifact at ``path``, whose ``inputs`` its reader gave, was made from
    the upstream artifact with this fingerprint."""
    recorded = inputs.get(role, {}).get("fingerprint")
    if recorded != upstream_fingerprint and not force:
        raise StaleError(
            f"was made from a different {role} file than {upstream_path} (fingerprint {str(recorded)[:12]} vs "
            f"{upstream_fingerprint[:12]}); re-run the earlier stage or pass `force`",
            path,
        )
