"""The on-disk format: every HDF5 artifact deepuad reads or writes goes through this module.

Every artifact's root carries these attributes:

    deepuad_kind            "features" | "clusters" | "model" | "scores" | "scores_shard"
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

A "scores_shard" holds the scores of one contiguous row range of a features file (``score
--shard i/n``); its attributes shard_index, shard_count, row_start, row_stop, n_rows_total and
batch_rows must agree with ``shard_rows``, which open_artifact checks. ``merge-scores`` turns a
complete set of shards into one ordinary "scores" artifact.

Nothing here unpickles: all content is numeric/string datasets and JSON attributes.
"""

from __future__ import annotations

import _thread
import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import secrets
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from deepuad import __version__
from deepuad.errors import DeepUADError, InputError, OutputError, StaleError

SCHEMA_VERSION = 1
KINDS = ("features", "clusters", "model", "scores", "scores_shard")
HASH_CHUNK_BYTES = 64 << 20

# kind -> {dataset: (ndim, dtype kinds allowed, required)}. Shapes across datasets are checked
# by the readers below (e.g. len(y) == len(X)).
SCHEMA: dict[str, dict[str, tuple[int, str, bool]]] = {
    "features": {"X": (2, "f", True), "y": (1, "iub", False), "feature_names": (1, "OS", True), "ids": (1, "OSiu", False)},
    "clusters": {
        "assignment": (1, "i", True), "size": (1, "iu", True), "variance": (1, "f", True),
        "accepted": (1, "b", True), "selected": (1, "iu", True), "diagnostics/anomaly_share": (1, "f", False),
    },
    "model": {"epoch_losses": (1, "f", True), "rng_state": (1, "u", True), "iterations/0/selected": (1, "iu", True)},
    "scores": {"score": (1, "f", True), "is_anomaly": (1, "iub", True), "y": (1, "iub", False)},
    # the scores of one row range (score --shard i/n); merge-scores turns all n into one "scores"
    "scores_shard": {"score": (1, "f", True), "y": (1, "iub", False)},
}
# dataset (last path component) -> the values it may hold; read_array checks them, so that a
# flipped bit in a label is a corrupt file and not a crash in the metrics
BINARY_DATASETS = ("y", "is_anomaly")

# kind -> groups of (dataset, axis) whose lengths must agree (the readers index one by the other)
SAME_LENGTH: dict[str, list[list[tuple[str, int]]]] = {
    "features": [[("X", 0), ("y", 0), ("ids", 0)], [("X", 1), ("feature_names", 0)]],
    "clusters": [[("size", 0), ("variance", 0), ("accepted", 0), ("diagnostics/anomaly_share", 0)]],
    "model": [],
    "scores": [[("score", 0), ("is_anomaly", 0), ("y", 0)]],
    "scores_shard": [[("score", 0), ("y", 0)]],
}
# root attributes every artifact carries (ROOT_ATTRS: required) and those of each kind (checked
# when present; a reader that needs a missing one gets an InputError from open_artifact), with
# what they must hold: "str", "num" (a real number or bool), "int", "dict"/"list" (JSON text of
# that type). Checked on open, so that the stages never meet a garbage value (exit 1).
ROOT_ATTRS = {"fingerprint": "str", "params": "dict", "inputs": "dict"}
KIND_ATTRS: dict[str, dict[str, str]] = {
    "features": {"encoding_fingerprint": "str", "unseen_categories": "dict"},
    "clusters": {"threshold": "num", "fallback": "num", "n_rows": "int", "selected_anomaly_share": "num"},
    "model": {
        "architecture": "dict", "state": "dict", "iterations": "list", "complete": "num", "stop_reason": "str",
        "n_rows": "int", "encoding_fingerprint": "str", "final_metrics": "dict",
    },
    "scores": {"threshold": "num", "contamination": "num", "metrics": "dict"},
    "scores_shard": {"shard_index": "int", "shard_count": "int", "row_start": "int", "row_stop": "int",
                     "n_rows_total": "int", "batch_rows": "int"},
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
    "score": "anomaly score (the model's --score: combined, cosine, ...), higher = more anomalous",
    "is_anomaly": "1 where score > threshold",
    "epoch_losses": "mean training loss of each epoch",
    "rng_state": "state of the shuffling RNG, for exact resume",
    "scorer/reference": "sample of the final training set (data rows): k-NN reference, forest and score calibration",
    "scorer/score_center": "median of each score part over the reference rows",
    "scorer/score_scale": "interquartile range of each score part over the reference rows",
    "scorer/forest/left": "isolation forest: left child of each node (-1 = leaf), all trees concatenated",
    "scorer/forest/right": "isolation forest: right child of each node (-1 = leaf)",
    "scorer/forest/feature": "isolation forest: column each node splits on",
    "scorer/forest/threshold": "isolation forest: split value of each node (go left when x <= it)",
    "scorer/forest/n_samples": "isolation forest: training rows that reached each node",
    "scorer/forest/roots": "isolation forest: index of each tree's root node",
    "scorer/forest/max_samples": "isolation forest: rows each tree was grown on",
}


def shard_rows(n_rows: int, batch_rows: int, index: int, count: int) -> tuple[int, int]:
    """Rows [start, stop) of shard ``index`` of ``count``: the ceil(n_rows / batch_rows) scoring
    batches split into ``count`` near-equal contiguous groups. Cutting only at batch boundaries
    puts every row in the same batch as an unsharded run, so its score is bit-identical (a
    matrix product may round differently in a batch of another size). A shard is empty when
    there are fewer batches than shards."""
    batches = -(-n_rows // batch_rows)
    return min(index * batches // count * batch_rows, n_rows), min((index + 1) * batches // count * batch_rows, n_rows)


def fingerprint_of(path: str | Path) -> str:
    with open_artifact(path) as f:
        return f.attrs["fingerprint"]


# --------------------------------------------------------------------------- writing
def check_output_path(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """The output path, or OutputError if it cannot be written (before any work is done).

    An output is written under a temporary name and renamed into place, so whatever the name
    held is replaced: it must be a new name or a regular file, and none of the command's
    ``inputs`` (the same file under any name, or a file inside an input folder). Otherwise
    ``deepuad extract same.csv -o same.csv`` would replace the CSV, and ``-o /dev/null`` the
    device itself."""
    path = Path(path)
    try:
        info = os.stat(path)  # follows a symbolic link: what it points to is what gets replaced
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as error:  # a name too long, a loop of links, ...
        raise OutputError(f"cannot be used as an output: {error.strerror or error}", path) from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError("is a directory, expected a file name", path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError("is not a regular file (a device, FIFO or socket); deepuad writes a new file and renames it "
                          "into place, which would replace it: choose a file name", path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"folder {folder} is not writable", path)
    if info is not None and not os.access(path, os.W_OK):
        raise OutputError("exists and is not writable", path)
    for source in inputs:
        if source is not None and is_same_or_inside(path, source):
            raise OutputError(f"is also an input of this command ({source}); writing it would destroy that input: "
                              "choose another output name", path)
    return path


def is_same_or_inside(path: str | Path, source: str | Path) -> bool:
    """Whether ``path`` is the file ``source`` (under any name: a link counts) or lies inside the
    folder ``source``."""
    path, source = Path(path), Path(source)
    try:  # any of these can raise for a name the OS refuses (too long): then it names nothing that exists
        if path.exists() and source.exists() and os.path.samefile(path, source):
            return True
        resolved, resolved_source = path.resolve(), source.resolve()
        return resolved == resolved_source or (source.is_dir() and resolved_source in resolved.parents)
    except (OSError, RuntimeError):
        return False


@contextlib.contextmanager
def write_artifact(path: str | Path, kind: str, params: dict, inputs: dict | None = None) -> Iterator[h5py.File]:
    """Yield an HDF5 file open under a temporary name; on success it is fingerprinted,
    flushed to disk and renamed to ``path``; on any error the temporary file is removed
    and the old ``path`` (if any) is left untouched."""
    assert kind in KINDS
    path = check_output_path(path)
    with _folder_lock(path):
        yield from _write_locked(path, kind, params, inputs)


WRITER_WAIT_SECONDS = 600


@contextlib.contextmanager
def _folder_lock(path: Path):
    """One deepuad writer per folder at a time: a second one waits (up to WRITER_WAIT_SECONDS,
    then OutputError) instead of racing, so two jobs writing the same -o finish one after the
    other. flock on the folder itself leaves no lock file behind; where flock is unavailable
    (Windows, some network filesystems) the atomic rename alone still prevents mixed files."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder_fd = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
    try:
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(folder_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(f"another deepuad process has been writing in this folder for {WRITER_WAIT_SECONDS} s", path) from None
                time.sleep(0.1)
            except OSError:  # flock not supported here: rely on the atomic rename
                break
        yield
    finally:
        os.close(folder_fd)


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
            for name, dataset in _datasets(f):
                key = name if name in DESCRIPTIONS else name.split("/")[-1]  # a full path first: "scorer/forest/left"
                if "description" not in dataset.attrs and key in DESCRIPTIONS:
                    dataset.attrs["description"] = DESCRIPTIONS[key]
            f.attrs["fingerprint"] = content_fingerprint(f)
        handle.check()  # closing flushes HDF5's caches: more writes that may have failed
        os.fsync(handle.raw.fileno())
        handle.raw.close()
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


def _temporary_name(path: Path) -> Path:
    # a name near the file system's 255-byte limit must still leave room for the temporary suffix
    short_name = path.name.encode()[:200].decode(errors="ignore")
    return path.with_name(f".{short_name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_file_atomically(path: str | Path, write, inputs: Iterable[str | Path | None] = ()) -> Path:
    """A non-HDF5 output (a plot, metrics.json) written like an artifact: checked by
    check_output_path, written by ``write(binary file)`` under a temporary name, fsynced and
    renamed into place; on any error the temporary file is removed and the old file kept."""
    path = check_output_path(path, inputs)
    tmp = _temporary_name(path)
    try:
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove_quietly(tmp)
        raise _output_error(error, path) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


class _SafeFile:
    """The temporary file as HDF5 sees it (h5py's ``fileobj`` driver).

    HDF5 does not survive a failed write: once a write has failed (disk full, file size limit,
    I/O error) the next flush or close of the file segfaults (h5py issues 914 and 2160), so a
    full disk would kill the process instead of ending it with a message. Here a failed write is
    recorded and reported to HDF5 as done; ``check()`` raises the recorded error, and
    write_artifact removes the file, once HDF5 has closed it cleanly. Writes are looped until
    complete: the driver ignores short writes, which would otherwise be silent corruption. After
    ``discard()`` every method is a harmless no-op, for an HDF5 that closes the file late."""

    def __init__(self, path: Path):
        self.raw = open(path, "xb+", buffering=0)  # x: a name clash with another writer fails, never shares
        self.error: OSError | None = None
        self.discarded = False

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def discard(self) -> None:
        self.discarded = True
        with contextlib.suppress(OSError):
            self.raw.close()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and not self.discarded and done < len(view):
            try:
                written = self.raw.write(view[done:])
            except OSError as error:
                self.error = error
                break
            if not written:
                self.error = OSError(errno.EIO, "short write")
            done += written or 0
        return len(view)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if not self.discarded:
            try:
                done = self.raw.readinto(view) or 0
            except OSError as error:
                self.error = self.error or error
        if done < len(view):  # past the end, as HDF5's own driver does: zeros
            view[done:] = bytes(len(view) - done)
        return len(view)

    def read(self, size: int = -1) -> bytes:  # h5py requires it; it reads with readinto
        return b"" if self.discarded else self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return offset if self.discarded else self.raw.seek(offset, whence)

    def tell(self) -> int:
        return 0 if self.discarded else self.raw.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.error is None and not self.discarded:
            try:
                self.raw.truncate(size)
            except OSError as error:
                self.error = error
        return size or 0

    def flush(self) -> None:
        pass  # unbuffered; write_artifact fsyncs before the rename


_DRIVER_CODE = frozenset(f.__code__ for f in vars(_SafeFile).values() if callable(f) and hasattr(f, "__code__"))


@contextlib.contextmanager
def _interrupts_held_in_driver() -> Iterator[None]:
    """Hold back a Ctrl-C (or a SIGTERM, which the CLI turns into the same KeyboardInterrupt)
    while HDF5 is inside one of _SafeFile's methods and re-deliver it a moment later: a
    KeyboardInterrupt raised there fails HDF5's write, and HDF5 then segfaults on close (the
    same bug as a full disk). Everywhere else the signal acts at once, as usual.

    A held-back signal whose re-delivery has not happened yet when HDF5 closes the file is
    raised here, before the caller renames the file into place: otherwise it would arrive
    after the rename (or during interpreter shutdown, where Python only prints it), and the
    command would end with exit 0 and a replaced output although it was interrupted."""
    signums = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.getsignal(s) for s in signums}
    held = [s for s in signums if callable(previous[s])]  # SIG_IGN/SIG_DFL raise nothing in Python
    if threading.current_thread() is not threading.main_thread() or not held:
        yield  # signals only reach the main thread
        return
    pending: list[threading.Timer] = []

    def handler(signum, frame):
        if _inside_driver(frame):
            timer = threading.Timer(0.01, _redeliver, (signum,))  # again once HDF5 has returned
            timer.daemon = True
            pending.append(timer)
            timer.start()
            return
        pending.clear()  # delivered now
        previous[signum](signum, frame)

    for signum in held:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum in held:
            signal.signal(signum, previous[signum])
        late = [timer for timer in pending if timer.is_alive()]
        for timer in late:
            timer.cancel()
    if late:
        raise KeyboardInterrupt


def _redeliver(signum: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signum)


def _inside_driver(frame) -> bool:
    """Whether HDF5 is in one of _SafeFile's methods: anywhere on the stack, so that a second
    Ctrl-C landing in this handler (or in the Timer it starts) is held back too."""
    while frame is not None:
        if frame.f_code in _DRIVER_CODE:
            return True
        frame = frame.f_back
    return False


def _output_error(error: OSError, path: Path) -> OutputError:
    if error.errno == errno.ENOSPC or "No space" in str(error):
        return OutputError("no space left on the device; nothing was written", path)
    if error.errno == errno.EFBIG:
        return OutputError("file too large for the file system or the file size limit; nothing was written", path)
    if error.errno == errno.EDQUOT:
        return OutputError("disk quota exceeded; nothing was written", path)
    return OutputError(f"cannot write: {error.strerror or error}", path)


def _discard(handle: "_SafeFile | None", tmp: Path) -> None:
    if handle is not None:
        handle.discard()
    _remove_quietly(tmp)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where folders cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
        for name, expected in ROOT_ATTRS.items():
            _check_attr(f, path, name, expected, required=True)
        for name, expected in KIND_ATTRS[found_kind].items():
            _check_attr(f, path, name, expected, required=False)
        for name, (ndim, dtype_kinds, required) in SCHEMA[found_kind].items():
            _check_dataset(f, path, name, ndim, dtype_kinds, required)
        _check_lengths(f, path, found_kind)
        if found_kind == "model":
            _check_model(f, path)
        if found_kind == "scores_shard":
            _check_shard(f, path)
        yield f


# HDF5 can make a file read other files: external links, external raw storage (the data in a
# named file, which may be /etc/passwd or a FIFO that blocks forever), virtual datasets (whose
# missing sources read as zeros) and filters loaded as plugins. deepuad writes none of these, so
# an artifact that holds one is refused before anything in it is read. Declared sizes are
# bounded too, so that a small file cannot make a reader allocate gigabytes.
ALLOWED_FILTERS = frozenset({h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32})
MAX_CHUNK_BYTES = 64 << 20  # deepuad writes chunks of about 1 MiB; HDF5 allocates a whole chunk per read
MAX_ATTRIBUTE_BYTES = 16 << 20  # deepuad's largest attribute is a few KiB of JSON
MAX_COMPRESSION_RATIO = 1100  # deflate cannot compress by more than about 1032:1
MAX_JSON_DEPTH = 32  # deepuad's JSON nests 4 levels deep
MAX_LAYERS, MAX_WIDTH = 64, 1 << 20  # a model's declared architecture; the weights must then match it


def check_self_contained(f: h5py.File, path: str | Path) -> None:
    """InputError unless every object of ``f`` lives in this file: no external or soft links,
    no external storage, no virtual datasets, only the filters deepuad uses, chunks and
    attributes of sane declared sizes, and attributes whose text is valid UTF-8."""
    path = Path(path)
    links: list[tuple[str, object]] = []
    try:
        # collect first, check after: an exception raised inside HDF5's visit callback comes
        # back as a SystemError from h5py's lock
        f.visititems_links(lambda name, link: links.append((name, link)))
        objects: list[tuple[str, object]] = [("/", f)]
        for name, link in links:
            if isinstance(link, h5py.ExternalLink):
                raise InputError(f"'{name}' is an external link to {link.filename[:100]}; deepuad reads nothing outside "
                                 "the artifact (refused)", path)
            if not isinstance(link, h5py.HardLink):
                raise InputError(f"'{name}' is a {type(link).__name__}; deepuad artifacts hold no links (refused)", path)
            objects.append((name, f[name]))
        for name, obj in objects:
            if isinstance(obj, h5py.Dataset):
                _check_dataset_layout(obj, path, name)
            for attr in obj.attrs:
                _check_attribute(obj, attr, path, name)
    except InputError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError) as error:
        raise InputError(f"unreadable (corrupt?): {_one_line(error)}", path) from None


def _check_dataset_layout(dataset: h5py.Dataset, path: Path, name: str) -> None:
    plist = dataset.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise InputError(f"dataset '{name}' is a virtual dataset made of other files; deepuad reads nothing outside "
                         "the artifact (refused)", path)
    if plist.get_external_count() > 0:
        raise InputError(f"dataset '{name}' keeps its data in an external file ({plist.get_external(0)[0].decode(errors='replace')[:100]}); "
                         "deepuad reads nothing outside the artifact (refused)", path)
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in ALLOWED_FILTERS:
            raise InputError(f"dataset '{name}' uses HDF5 filter {code}, which deepuad does not write (refused: "
                             "filters can be loaded as plugins)", path)
    if dataset.chunks is not None:
        chunk_bytes = int(np.prod(dataset.chunks, dtype=np.float64)) * dataset.dtype.itemsize
        if chunk_bytes > MAX_CHUNK_BYTES:
            raise InputError(f"dataset '{name}' declares chunks of {chunk_bytes / 2**20:.0f} MiB (at most "
                             f"{MAX_CHUNK_BYTES >> 20} MiB; corrupt or crafted?)", path)
    _check_storage(dataset, path, name)


def _check_attribute(obj, attr: str, path: Path, name: str) -> None:
    attr_id = obj.attrs.get_id(attr)
    declared = int(np.prod(attr_id.shape or (), dtype=np.float64)) * attr_id.dtype.itemsize
    where = f"attribute '{attr}'" + ("" if name == "/" else f" of '{name}'")
    if declared > MAX_ATTRIBUTE_BYTES:
        raise InputError(f"{where} declares {declared / 2**20:.0f} MiB (corrupt or crafted?)", path)
    try:
        value = obj.attrs[attr]
    except (UnicodeDecodeError, OSError, ValueError, TypeError) as error:
        raise InputError(f"{where} is unreadable (not UTF-8 text?): {_one_line(error)}", path) from None
    for item in np.asarray(value, dtype=object).ravel() if np.ndim(value) else (value,):
        if isinstance(item, bytes):
            try:
                item.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{where} is not valid UTF-8 text (corrupt?)", path) from None


@contextlib.contextmanager
def _h5py_errors_as_input_errors(path: Path) -> Iterator[None]:
    """An error HDF5 raises while an artifact is being checked or read (a corrupt block, a
    missing attribute, a stored datatype NumPy cannot represent) is an InputError naming the
    file. Anything else is left alone, including h5py's other TypeError/ValueError, which mean a
    wrong call (our bug) rather than a bad file."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
        where = _raised_in(error)
        if "h5py" not in Path(where).parts or (isinstance(error, (ValueError, TypeError)) and not where.endswith("h5t.pyx")):
            raise  # our own bug: let it be one (exit 1), not a "corrupt file"
        if isinstance(error, KeyError):  # h5py's way of saying an attribute or object is not there
            raise InputError(f"incomplete (corrupt?): {_one_line(error.args[0] if error.args else error)}", path) from None
        raise InputError(f"unreadable (corrupt?): {_one_line(error)}", path) from None


def _raised_in(error: BaseException) -> str:
    """The source file of the innermost frame of the error's traceback."""
    traceback = error.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return "" if traceback is None else traceback.tb_frame.f_code.co_filename


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())  # HDF5 messages span lines; the CLI promises one
    return text if len(text) <= 300 else text[:297] + "..."


def _str_attr(f: h5py.File, name: str) -> str:
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_attr(f: h5py.File, path: Path, name: str, expected: str, required: bool) -> None:
    try:
        if name not in f.attrs:
            if required:
                raise InputError(f"attribute '{name}' is missing", path)
            return
        value = f.attrs[name]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"attribute '{name}' is unreadable (corrupt?): {_one_line(error)}", path) from None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if expected == "str":
        ok = isinstance(value, str)
    elif expected in ("num", "int"):
        kinds = "iub" if expected == "int" else "iubf"
        ok = np.ndim(value) == 0 and np.asarray(value).dtype.kind in kinds
    else:
        ok = isinstance(value, str) and isinstance(_parse_json(value, path, name), dict if expected == "dict" else list)
    if not ok:
        described = {"str": "a string", "num": "a number", "int": "an integer", "dict": "a JSON object", "list": "a JSON list"}
        raise InputError(f"attribute '{name}' is not {described[expected]} (corrupt?)", path)


def _check_dataset(f: h5py.File, path: Path, name: str, ndim: int, dtype_kinds: str, required: bool) -> None:
    try:
        dataset = f.get(name)
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
        _check_storage(dataset, path, name)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as error:
        raise InputError(f"dataset '{name}' is unreadable: {_one_line(error)}", path) from None


def _check_storage(dataset: h5py.Dataset, path, name: str) -> None:
    """InputError if a dataset declares more data than the file holds (never written, or cut
    off): HDF5 would hand out fill values, and a declared 2**40 rows would make a reader loop
    or allocate for hours instead of failing."""
    if dataset.size == 0:
        return
    layout = dataset.id.get_create_plist().get_layout()
    if dataset.chunks is not None:
        expected = int(np.prod([-(-n // c) for n, c in zip(dataset.shape, dataset.chunks)], dtype=np.float64))
        stored = dataset.id.get_num_chunks()
        if stored < expected:
            raise InputError(f"dataset '{name}' declares shape {dataset.shape} but only {stored} of its {expected} "
                             "chunks are stored (truncated or corrupt?)", path)
        nbytes = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
        if dataset.id.get_storage_size() * MAX_COMPRESSION_RATIO < nbytes:
            raise InputError(f"dataset '{name}' declares {nbytes / 2**20:.0f} MiB in {dataset.id.get_storage_size()} "
                             "stored bytes, more than any compression gives (corrupt or crafted?)", path)
    elif layout == h5py.h5d.CONTIGUOUS:
        nbytes = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
        if dataset.id.get_storage_size() < nbytes:
            raise InputError(f"dataset '{name}' declares shape {dataset.shape} but its data is not stored "
                             "(truncated or corrupt?)", path)


def _check_model(f: h5py.File, path: Path) -> None:
    """The JSON a model's reader indexes into, and the arrays it turns into tensors."""
    def invalid(name):
        return InputError(f"attribute '{name}' does not describe a model (corrupt?)", path)

    if "architecture" in f.attrs:
        architecture = attr_json(f, "architecture")
        layers = architecture.get("layers")
        if not (_positive_int(architecture.get("n_features")) and isinstance(layers, list) and layers
                and all(map(_positive_int, layers)) and isinstance(architecture.get("activation"), str)):
            raise invalid("architecture")
        if len(layers) > MAX_LAYERS or max(architecture["n_features"], *layers) > MAX_WIDTH:  # declared, not stored
            raise InputError(f"architecture declares {len(layers)} layers up to {max(layers)} wide (at most {MAX_LAYERS} "
                             f"layers of {MAX_WIDTH}; corrupt or crafted?)", path)
    if "state" in f.attrs:
        state = attr_json(f, "state")
        if not (isinstance(state.get("epoch"), int) and isinstance(state.get("optimizer_param_groups"), str)):
            raise invalid("state")
    if "iterations" in f.attrs:
        keys = ("iteration", "epoch", "n_changed", "loss", "threshold", "fallback")
        for record in attr_json(f, "iterations"):
            if not (isinstance(record, dict) and all(k in record for k in keys) and isinstance(record["iteration"], int)):
                raise invalid("iterations")
            _check_dataset(f, path, f"iterations/{record['iteration']}/selected", 1, "iu", True)
            group = f[f"iterations/{record['iteration']}"]
            for name, value in group.attrs.items():  # epoch, loss, auroc, ...: numbers, read with float()
                if not (np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iubf"):
                    raise InputError(f"attribute '{name}' of iterations/{record['iteration']} is not a number (corrupt?)", path)
    for group in ("weights", "optimizer"):
        for name, dataset in _datasets(f):
            if name.startswith(group + "/") and dataset.dtype.kind != "f":
                raise InputError(f"dataset '{name}' has dtype {dataset.dtype}, expected floats", path)


def _check_shard(f: h5py.File, path: Path) -> None:
    """A shard's row range must be the one shard_rows gives for its index, count, total and
    batch size: merge-scores relies on it to find gaps and overlaps."""
    names = ("shard_index", "shard_count", "row_start", "row_stop", "n_rows_total", "batch_rows")
    for name in names:
        if name not in f.attrs:
            raise InputError(f"attribute '{name}' is missing", path)
    index, count, start, stop, total, batch_rows = (int(f.attrs[name]) for name in names)
    if not (0 <= index < count and total >= 1 and batch_rows >= 1):
        raise InputError(f"shard {index} of {count}, {total} rows in batches of {batch_rows}: not a valid shard (corrupt?)", path)
    if (start, stop) != shard_rows(total, batch_rows, index, count):
        raise InputError(f"rows {start}..{stop} are not the rows of shard {index} of {count} (corrupt?)", path)
    if f["score"].shape[0] != stop - start:
        raise InputError(f"dataset 'score' has {f['score'].shape[0]} rows but the shard covers {stop - start} (corrupt?)", path)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_lengths(f: h5py.File, path: Path, kind: str) -> None:
    for group in SAME_LENGTH[kind]:
        present = [(name, axis, f[name].shape[axis]) for name, axis in group if name in f]
        for name, axis, length in present[1:]:
            first, first_axis, first_length = present[0]
            if length != first_length:
                raise InputError(f"dataset '{name}' has {length} {'rows' if axis == 0 else 'entries'} but '{first}' has "
                                 f"{first_length} {'rows' if first_axis == 0 else 'columns'} (corrupt?)", path)
    if kind == "clusters" and f["assignment"].shape[0] != int(f.attrs["n_rows"]):
        raise InputError(f"dataset 'assignment' has {f['assignment'].shape[0]} rows but n_rows is {int(f.attrs['n_rows'])} (corrupt?)", path)


def read_array(f: h5py.File, name: str, max_bytes: int = 8 << 30, rows: slice | None = None) -> np.ndarray:
    """Read a whole dataset (or its ``rows``), refusing absurd declared sizes (a corrupt file
    must not OOM us)."""
    try:
        dataset = f[name]
        if not isinstance(dataset, h5py.Dataset):
            raise InputError(f"'{name}' is not a dataset", f.filename)
        nbytes = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
        if nbytes > max_bytes:
            raise InputError(f"dataset '{name}' declares {nbytes / 2**30:.1f} GiB; refusing to load it whole", f.filename)
        _check_storage(dataset, f.filename, name)
        data = dataset[()] if rows is None else dataset[rows]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise InputError(f"dataset '{name}' is unreadable (corrupt?): {_one_line(error)}", f.filename) from None
    if name.split("/")[-1] in BINARY_DATASETS and data.dtype.kind in "iub" and not np.isin(data, (0, 1)).all():
        raise InputError(f"dataset '{name}' holds values other than 0 and 1 (corrupt?)", f.filename)
    return data


def read_strings(f: h5py.File, name: str) -> list[str]:
    try:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in read_array(f, name)]
    except UnicodeDecodeError:
        raise InputError(f"dataset '{name}' holds text that is not valid UTF-8 (corrupt?)", f.filename) from None


def read_json(f: h5py.File, name: str):
    """A JSON document stored as a scalar string dataset (see put_json)."""
    return _parse_json(read_array(f, name), f.filename, name)


def attr_json(f: h5py.File, name: str):
    """A JSON document stored as an attribute."""
    if name not in f.attrs:
        raise InputError(f"attribute '{name}' is missing", f.filename)
    return _parse_json(f.attrs[name], f.filename, name)


def _parse_json(raw, filename, name):
    try:
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        raise InputError(f"'{name}' is not valid UTF-8 text (corrupt?)", filename) from None
    # measured on the text, before parsing: deep nesting overflows the parser's recursion, and
    # a parsed document of a few hundred levels would crash later comparisons and printing
    if json_text_depth(raw) > MAX_JSON_DEPTH:
        raise InputError(f"'{name}' is JSON nested more than {MAX_JSON_DEPTH} levels deep (corrupt or crafted?)", filename)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise InputError(f"'{name}' is not valid JSON (corrupt?)", filename) from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_text_depth(text: str) -> int:
    """How deeply [ and { nest in JSON text, outside strings (an upper bound for invalid JSON)."""
    codes = np.frombuffer(_JSON_STRING.sub('""', text).encode(), dtype=np.uint8)
    if not len(codes):
        return 0
    opened = np.cumsum((codes == ord("[")) | (codes == ord("{")), dtype=np.int64)
    closed = np.cumsum((codes == ord("]")) | (codes == ord("}")), dtype=np.int64)
    return int((opened - closed).max())


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
