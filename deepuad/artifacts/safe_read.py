"""Reading HDF5 without trusting it: every check that keeps a corrupt or crafted file from
crashing deepuad, making it read other files, or allocating gigabytes. Each failure is an
InputError naming the file. Nothing here unpickles: artifacts hold numeric and string datasets
and JSON attributes only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from deepuad.artifacts import schema
from deepuad.errors import DataError, InputError, RequestError


# dataset (last path component) -> the values it may hold; read_array checks them, so that a
# flipped bit in a label is a corrupt file and not a crash in the metrics
BINARY_DATASETS = ("y", "is_anomaly")


# HDF5 can make a file read other files: external links, external raw storage (the data in a
# named file, which may be /etc/passwd or a FIFO that blocks forever), virtual datasets (whose
# missing sources read as zeros) and filters loaded as plugins. deepuad writes none of these, so
# an artifact that holds one is refused before anything in it is read. Declared sizes are
# bounded too, so that a small file cannot make a reader allocate gigabytes.
ALLOWED_FILTERS = frozenset({h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32})
MAX_CHUNK_BYTES = 64 << 20  # deepuad writes chunks of about 1 MiB; HDF5 allocates a whole chunk per read
MAX_ATTRIBUTE_BYTES = 16 << 20  # deepuad's largest attribute is a few KiB of JSON
MAX_COMPRESSION_RATIO = 1100  # deflate cannot compress by more than about 1032:1
# replaces the ratio of every schema.Inflation (check_inflation), for a file one trusts
INFLATION_VARIABLE = "DEEPUAD_MAX_INFLATION"
MAX_JSON_DEPTH = 32  # deepuad's JSON nests 4 levels deep
MAX_LAYERS, MAX_WIDTH = 64, 1 << 20  # a model's declared architecture; the weights must then match it
# groups and datasets in one artifact: the largest model (64 layers, Adam's state, 1,002
# re-selections) holds about 3,300
MAX_OBJECTS = 4096


def check_self_contained(f: h5py.File, path: str | Path) -> None:
    """InputError unless every object of ``f`` lives in this file: no external or soft links,
    no external storage, no virtual datasets, only the filters deepuad uses, chunks and
    attributes of sane declared sizes, and attributes whose text is valid UTF-8."""
    path = Path(path)
    links: list[tuple[str, object]] = []
    try:
        _check_object_count(f, path)
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


def _check_object_count(f: h5py.File, path: Path) -> None:
    """InputError for a file of more than MAX_OBJECTS links, counted by name only (and no further
    than the limit): every later check visits each object, at a fraction of a millisecond each."""
    count = 0

    def counted(name):
        nonlocal count
        count += 1
        return True if count > MAX_OBJECTS else None  # not None: stop visiting

    f.visit_links(counted)  # not f.id.links.visit: h5py's own frame tells a signal handler it is inside h5py
    if count > MAX_OBJECTS:
        raise InputError(f"holds more than {MAX_OBJECTS:,} groups and datasets (corrupt or crafted?)", path)


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


def check_attribute(f: h5py.File, path: Path, name: str, attr: schema.Attr, resolve) -> None:
    """InputError unless root attribute ``name`` is what its declaration says (missing: only if
    it is not required); a JSON attribute is parsed and its whole structure checked."""
    try:
        if name not in f.attrs:
            if attr.required:
                raise InputError(f"attribute '{name}' is missing", path)
            return
        value = f.attrs[name]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"attribute '{name}' is unreadable (corrupt?): {_one_line(error)}", path) from None
    try:
        if isinstance(attr.spec, schema.Json):
            if not isinstance(value, (str, bytes)):
                raise schema.SchemaError(name, "must be JSON text")
            schema.check_value(attr.spec.spec, _parse_json(value, path, name), name, resolve)
        else:
            schema.check_value(attr.spec, schema.python_value(value), name, resolve)
    except schema.SchemaError as error:
        raise InputError(f"attribute {error} (corrupt or crafted?)", path) from None


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


def check_inflation(path: Path, datasets: list[tuple[str, h5py.Dataset, schema.Array | None]]) -> None:
    """InputError unless what an artifact's datasets declare is bounded by the file's size, so
    that a small file can make a reader hold, or score, only about as much as it stores: a
    dataset that deepuad writes uncompressed declares no more bytes than it stores; those it
    writes compressed (declared with a ``schema.Inflation``: X, a model's selections) declare,
    together, at most their floor or their ratio times the file's size; and the datasets store
    no more than the file holds (chunks that share bytes would make a file look bigger).
    ``datasets``: (name, dataset, its declaration or None) for every dataset of the file."""
    size = os.stat(path).st_size
    stored_total = 0
    compressed: dict[schema.Inflation, list[tuple[str, int]]] = {}
    for name, dataset, declaration in datasets:
        nbytes = int(np.prod(dataset.shape, dtype=np.float64)) * dataset.dtype.itemsize
        stored = dataset.id.get_storage_size()
        stored_total += stored
        if declaration is not None and declaration.inflation is not None:
            compressed.setdefault(declaration.inflation, []).append((name, dataset.shape, nbytes))
        elif nbytes > stored:
            raise InputError(f"dataset '{name}' declares {_size(nbytes)} in {_size(stored)} stored: compressed, which "
                             "deepuad never does to it (refused: what a command reads whole is bounded by the file's "
                             "size; corrupt or crafted?)", path)
    if stored_total > size:
        raise InputError(f"its datasets claim {_size(stored_total)} of storage in a {_size(size)} file (chunks that share "
                         "their bytes; corrupt or crafted?)", path)
    for inflation, members in compressed.items():
        declared = sum(counted_bytes(inflation, shape, nbytes) for _, shape, nbytes in members)
        if declared > inflation_limit(inflation, size):
            names = f"'{members[0][0]}'" + (f" and {len(members) - 1} more" if len(members) > 1 else "")
            what = _size(declared)
            if declared > sum(nbytes for _, _, nbytes in members):  # counted by the row
                what = f"{members[0][1][0]:,} rows, counted as {what} ({inflation.row_bytes} bytes a row at least)"
            raise InputError(f"dataset {names} declares {what} in a {_size(size)} file ({declared / size:,.0f}:1; "
                             f"{inflation_rule(inflation)}, so that a small file cannot {inflation.cost}; "
                             f"{INFLATION_VARIABLE}={math.ceil(declared / size)} accepts it if you trust it)", path)


def counted_bytes(inflation: schema.Inflation, shape: tuple, nbytes: int) -> int:
    """What a dataset of ``shape`` and ``nbytes`` declares, as ``inflation`` counts it: its
    bytes, or its rows at ``row_bytes`` each if that is more."""
    return max(nbytes, shape[0] * inflation.row_bytes) if shape else nbytes


def inflation_limit(inflation: schema.Inflation, size: int) -> float:
    """The most bytes the datasets under ``inflation`` may declare in a file of ``size`` bytes."""
    return max(inflation.floor, max_inflation(inflation.ratio) * size)


def inflation_rule(inflation: schema.Inflation) -> str:
    return f"beyond {_size(inflation.floor)} deepuad accepts {max_inflation(inflation.ratio):g}:1"


def max_inflation(default: float) -> float:
    """The ratio DEEPUAD_MAX_INFLATION sets (a number from 1 to MAX_COMPRESSION_RATIO), else
    ``default``; RequestError (exit 2) for any other value."""
    text = os.environ.get(INFLATION_VARIABLE, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value <= MAX_COMPRESSION_RATIO:
        raise RequestError(f"{INFLATION_VARIABLE} must be a number from 1 to {MAX_COMPRESSION_RATIO:,}, got {text[:40]!r}")
    return value


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes >= 1 << 20 else f"{int(nbytes):,} bytes"


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
    declared = schema.dataset_spec(f, name)
    if declared is not None:
        try:
            schema.check_array_shape(declared, dataset, name)
            schema.check_array_values(declared, data, name, schema.resolver(f))
        except schema.SchemaError as error:
            raise InputError(f"dataset {error} (corrupt or crafted?)", f.filename) from None
    return data


def read_strings(f: h5py.File, name: str) -> list[str]:
    try:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in read_array(f, name)]
    except UnicodeDecodeError:
        raise InputError(f"dataset '{name}' holds text that is not valid UTF-8 (corrupt?)", f.filename) from None


def read_json(f: h5py.File, name: str):
    """A JSON document stored as a scalar string dataset (see put_json), checked against the
    structure its kind declares."""
    value = _parse_json(read_array(f, name), f.filename, name)
    declared = schema.dataset_spec(f, name)
    if declared is not None and declared.json is not None:
        try:
            schema.check_value(declared.json, value, name, schema.resolver(f))
        except schema.SchemaError as error:
            raise InputError(f"dataset {error} (corrupt or crafted?)", f.filename) from None
    return value


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


def finite_threshold(f: h5py.File, path) -> float:
    """An artifact's threshold attribute, or DataError naming the file if it is not a number."""
    threshold = float(f.attrs["threshold"])
    if not np.isfinite(threshold):
        raise DataError(f"has threshold {threshold}, not a number", path)
    return threshold
