"""NumPy array files (.npy, .npz) to a numeric matrix, and the scaler shared with tables.

Kept apart from ``tabular`` so that reading an array never imports pandas (slow to import).
``load_array_file`` never unpickles and refuses a header that
declares more data than the file holds; ``ArrayScaler`` is ``TabularEncoder``'s scaler alone,
stored in the features artifact so that ``extract --like`` scales new arrays identically.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from deepuad.errors import DataError, InputError, ParamError

SCALERS = ("minmax", "standard", "none")
# what extract does with a gap (an empty cell, a null, a NaN in an array): refuse it, leave its
# row out, or fill it (a numeric column's median over the rows extracted; a gap in a text column
# is a category of its own)
MISSING = ("error", "drop", "fill")
ENCODING_VERSION = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NUMPY_SIGNATURES = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")  # .npy; .npz (a zip, possibly empty)


def _starts_with(path: Path, signatures) -> bool:
    signatures = (signatures,) if isinstance(signatures, bytes) else signatures
    try:
        with open(path, "rb") as handle:
            head = handle.read(max(map(len, signatures)))
    except OSError:
        return False  # the reader below reports it
    return any(head.startswith(signature) for signature in signatures)



def check_missing(missing: str) -> str:
    if missing not in MISSING:
        raise ParamError("missing", f"must be one of {', '.join(MISSING)}, got {missing!r}")
    return missing


def gap_hint(what: str) -> str:
    """The end of the error for a gap under ``missing`` error: the two other choices."""
    return (f"{what}; pass `missing` drop to leave such rows out, or `missing` fill to fill the gaps (a numeric column's "
            "median; in a text column, a category of its own)")


class ArrayScaler:
    """The scaler alone, for inputs that are already numeric matrices (.npy/.npz). With
    ``missing="fill"`` a NaN is replaced by its column's median over the rows fitted
    (``fill_``), at fit and at transform time alike."""

    def __init__(self, scale="minmax", missing="error"):
        if scale not in SCALERS:
            raise ParamError("scale", f"must be one of {', '.join(SCALERS)}, got {scale!r}")
        self.scale = scale
        self.missing = check_missing(missing)

    def fit(self, X: np.ndarray, path=None) -> "ArrayScaler":
        X64 = X.astype(np.float64)
        if self.missing == "fill":
            empty = np.flatnonzero(np.isnan(X64).all(axis=0))
            if len(empty):
                raise DataError(f"column x{empty[0]} holds no value at all: no median to fill its gaps with", path)
            self.fill_ = np.nanmedian(X64, axis=0)
            X64 = self._filled(X64)
        if self.scale == "minmax":
            offset, scale = X64.min(axis=0), X64.max(axis=0) - X64.min(axis=0)
        elif self.scale == "standard":
            offset, scale = X64.mean(axis=0), X64.std(axis=0)
        else:
            offset, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        self.offset_, self.scale_ = offset, np.where(scale > 1e-12, scale, 1.0)
        return self

    def _filled(self, X64: np.ndarray) -> np.ndarray:
        gaps = np.isnan(X64)
        return np.where(gaps, self.fill_, X64) if gaps.any() else X64

    def transform(self, X: np.ndarray) -> np.ndarray:
        X64 = X.astype(np.float64)
        if self.missing == "fill":
            X64 = self._filled(X64)
        return ((X64 - self.offset_) / self.scale_).astype(np.float32)

    def to_dict(self) -> dict:
        d = {"encoding_version": ENCODING_VERSION, "params": {"scale": self.scale}, "array": True,
             "offset": [float(v) for v in self.offset_], "scale": [float(v) for v in self.scale_]}
        if self.missing != "error":  # absent: error (as in encodings written before --missing)
            d["params"]["missing"] = self.missing
        if self.missing == "fill":
            d["fill"] = [float(v) for v in self.fill_]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArrayScaler":
        scaler = cls(d["params"]["scale"], d["params"].get("missing", "error"))
        scaler.offset_ = np.asarray(d["offset"], dtype=np.float64)
        scaler.scale_ = np.asarray(d["scale"], dtype=np.float64)
        if scaler.missing == "fill":
            scaler.fill_ = np.asarray(d["fill"], dtype=np.float64)
        return scaler


MAX_COMPRESSION_RATIO = 1100  # deflate cannot compress by more than about 1032:1
# numbers compress a few times at most; an array that inflates more than MAX_INFLATION:1 to more
# than MAX_INFLATED_BYTES is checked before it is decompressed, as a zip bomb
MAX_INFLATED_BYTES, MAX_INFLATION = 64 << 20, 200


def _check_declared_sizes(path: Path) -> None:
    """InputError for a .npy (or an array in a .npz) whose header declares more data than the
    file holds: np.load allocates the declared shape first (a 2**31-row header in a small file
    is a MemoryError), then finds the data missing."""
    if _starts_with(path, b"\x93NUMPY"):
        with open(path, "rb") as handle:
            _check_npy_header(handle, path.stat().st_size, path, path.name)
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.file_size > MAX_COMPRESSION_RATIO * info.compress_size + (1 << 20):
                    raise InputError(f"member {info.filename!r} declares {info.file_size:,} bytes from {info.compress_size:,} "
                                     "compressed, more than compression gives (corrupt or crafted?)", path)
                if info.file_size > MAX_INFLATED_BYTES and info.file_size > MAX_INFLATION * info.compress_size:
                    raise InputError(f"member {info.filename!r} inflates {info.compress_size:,} bytes to {info.file_size:,} "
                                     f"(more than {MAX_INFLATION}:1 beyond {MAX_INFLATED_BYTES >> 20} MiB: a zip bomb?); "
                                     "save it with np.savez (uncompressed) if it is real data", path)
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        _check_npy_header(member, info.file_size, path, info.filename)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as error:
        raise InputError(f"not a readable NumPy file: {error}", path) from None


def _check_npy_header(handle, size: int, path: Path, name: str) -> None:
    try:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(handle)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as error:
        raise InputError(f"{name}: not a readable .npy header: {str(error)[:200]}", path) from None
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > size - handle.tell():
        raise InputError(f"{name} declares shape {shape} ({declared:,} bytes of {dtype}) but holds only "
                         f"{max(size - handle.tell(), 0):,} bytes (truncated or crafted?)", path)


def load_array_file(path: str | Path, missing: str = "error") -> tuple[np.ndarray, np.ndarray | None]:
    """(X, y or None) from a .npy (X only) or .npz (arrays X and optional y); never unpickles.
    A NaN is a gap: refused unless ``missing`` is drop or fill (then X keeps it, as float64);
    an infinite value is refused always."""
    path = Path(path)
    if not _starts_with(path, NUMPY_SIGNATURES):  # np.load would try to unpickle it, and say so
        raise InputError("is not a .npy or .npz file", path)
    _check_declared_sizes(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InputError(f"cannot load without unpickling, refused ({error})", path) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"not a readable NumPy file: {error}", path) from None
    y = None
    if isinstance(loaded, np.ndarray):
        X = loaded
    else:
        with loaded:
            if "X" not in loaded.files:
                raise InputError(f"has no array 'X' (found: {', '.join(loaded.files) or 'none'})", path)
            try:
                X = loaded["X"]
                y = loaded["y"] if "y" in loaded.files else None
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise InputError(f"array unreadable (corrupt, or needs unpickling): {error}", path) from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"X has shape {X.shape}; expected rows x features", path)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X is empty (shape {X.shape})", path)
    if X.dtype.kind == "c":  # np.number, but float() would drop the imaginary part without a word
        raise DataError(f"X holds complex numbers ({X.dtype}); store the real and imaginary parts as separate columns", path)
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"X has non-numeric dtype {X.dtype}", path)
    X64 = X.astype(np.float64)
    bad, infinite = ~np.isfinite(X64), np.isinf(X64)
    if infinite.any() or (bad.any() and check_missing(missing) == "error"):
        where = f"X has {int(bad.any(axis=1).sum())} row(s) with NaN or infinite values"
        if infinite.any():  # no --missing helps: report it first
            raise DataError(f"{where} (first infinite: row {int(np.argwhere(infinite)[0][0])})", path)
        raise DataError(gap_hint(f"{where} (first: row {int(np.argwhere(bad)[0][0])}, a NaN: a gap)"), path)
    if bad.any():
        X = X64
    if y is not None:
        y = np.asarray(y).ravel()
        if len(y) != len(X):
            raise DataError(f"y has {len(y)} entries but X has {len(X)} rows", path)
        if not np.isin(y, [0, 1]).all():
            raise DataError("y must hold 0/1 labels (1 = anomaly)", path)
        y = y.astype(np.int8)
    return X, y
