"""MNIST IDX files (``read_idx``, ``read_mnist``): the IDX format of LeCun's MNIST distribution,
gzip-compressed or plain (detected from the magic bytes, not the name)."""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from deepuad.inputs.media import first_line, is_gzip, MediaError

__all__ = ["read_idx", "read_mnist"]

# Deflate cannot expand data by more than about 1032:1, so a gzip file of n bytes
# decompresses to at most ~1032 n bytes. Checking declared sizes against this bound
# rejects absurd headers before reading anything.
_MAX_GZIP_RATIO = 1100


def _open_binary(path):
    """``path`` opened for reading bytes, transparently gunzipped if it starts with gzip's magic."""
    try:
        if is_gzip(path):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except IsADirectoryError:
        raise MediaError(path, "is a folder, expected a file") from None
    except OSError as error:
        raise MediaError(path, f"cannot open: {error.strerror or error}") from None


# IDX header: two zero bytes, a dtype code, the number of dimensions, then one big-endian
# uint32 per dimension. Multi-byte values are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_READ_CHUNK = 1 << 20


def _read_exactly(f, n_bytes: int) -> bytes:
    """Up to ``n_bytes`` from ``f``, in chunks, so memory grows only with what is really there."""
    chunks = []
    remaining = n_bytes
    while remaining > 0:
        chunk = f.read(min(_READ_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or plain), in native byte order.

    Raises MediaError for a missing file, a wrong magic number, an unknown dtype code,
    or a size that does not match the declared dimensions (truncated or trailing data).
    """
    f = _open_binary(path)
    try:
        with f:
            compressed = isinstance(f, gzip.GzipFile)
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
                raise MediaError(path, "not an IDX file (wrong magic number)")
            dtype_code, n_dims = magic[2], magic[3]
            if dtype_code not in _IDX_DTYPES:
                raise MediaError(path, f"not an IDX file (unknown dtype code 0x{dtype_code:02x})")
            if n_dims == 0:
                raise MediaError(path, "IDX header declares no dimensions")
            dims_bytes = f.read(4 * n_dims)
            if len(dims_bytes) < 4 * n_dims:
                raise MediaError(path, "truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
            dtype = _IDX_DTYPES[dtype_code]
            # Python ints: no overflow however large the declared dimensions are.
            data_bytes = math.prod(dims) * dtype.itemsize
            header_bytes = 4 + 4 * n_dims
            declared = f"declares shape {dims} of {dtype.name} ({data_bytes} bytes of data)"

            if compressed:
                file_bytes = os.path.getsize(path)
                if data_bytes > _MAX_GZIP_RATIO * file_bytes + 4096:
                    raise MediaError(
                        path, f"corrupt IDX header: {declared}, more than a {file_bytes}-byte "
                        "gzip file can hold")
                # Read one byte more than declared to notice trailing data.
                data = _read_exactly(f, data_bytes + 1)
                actual = len(data)
            else:
                actual = os.fstat(f.fileno()).st_size - header_bytes
                data = f.read(data_bytes) if actual == data_bytes else b""
            if actual < data_bytes:
                raise MediaError(path, f"truncated IDX file: {declared} but holds only {actual}")
            if actual > data_bytes:
                raise MediaError(path, f"IDX file has data after the declared end: {declared}")
    except (OSError, EOFError, zlib.error) as error:
        # Damaged gzip streams surface here (BadGzipFile, EOFError, zlib.error).
        raise MediaError(path, f"unreadable file: {first_line(error)}") from None
    array = np.frombuffer(data[:data_bytes], dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # native order, and a writable copy


def read_mnist(images_path, labels_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    """MNIST-style IDX images as ``X`` float32 (N, rows*cols) in [0, 1], plus labels.

    For MNIST that is (N, 784). ``class_label`` is int64 (N,), or None without a label file.
    """
    images = read_idx(images_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        hint = " (is this the label file?)" if images.ndim == 1 else ""
        raise MediaError(
            images_path, f"expected unsigned-byte images of shape (N, rows, cols), got "
            f"{images.dtype} of shape {images.shape}{hint}")
    if images.shape[0] == 0:
        raise MediaError(images_path, "holds no images")
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    if labels_path is None:
        return X, None

    labels = read_idx(labels_path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise MediaError(
            labels_path, f"expected integer labels of shape (N,), got {labels.dtype} of "
            f"shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise MediaError(
            labels_path, f"holds {labels.shape[0]} labels but {images_path} holds "
            f"{images.shape[0]} images")
    return X, labels.astype(np.int64)

