"""Reading rows of a large array, NumPy or HDF5, without torch: scoring, training and ``top``
(which must answer without importing torch) share it."""

from __future__ import annotations

import numpy as np


def take_rows(X, indices: np.ndarray, block_rows: int = 65536) -> np.ndarray:
    """``X[indices]`` for sorted indices, as float32. A NumPy array is indexed directly; any other
    array-like (an HDF5 dataset) is read in contiguous slices that start at a wanted row, since
    HDF5's fancy indexing is slow on many scattered rows."""
    if isinstance(X, np.ndarray):
        return np.ascontiguousarray(X[indices], dtype=np.float32)
    rows = np.empty((len(indices), X.shape[1]), dtype=np.float32)
    done = 0
    while done < len(indices):
        start = int(indices[done])
        stop = min(start + block_rows, len(X))
        end = int(np.searchsorted(indices, stop, side="left"))
        rows[done:end] = X[start:stop][indices[done:end] - start]
        done = end
    return rows
