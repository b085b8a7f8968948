"""Why a row scores high: the original columns that contribute most, and what the model expected.

The decomposition follows the model's ``score``:

* ``combined`` (default) and ``l2``: the squared reconstruction error ||x - x_hat||^2 split by
  column, (x_j - x_hat_j)^2, one-hot groups summed back to their source column. For ``l2`` it
  is the score itself; for ``combined`` it is the autoencoder part, and the main answer: the
  isolation forest part has no per-column split (each row also gets each part's robust
  z-score, whose mean IS the combined score, so one sees which part drove it).
* ``cosine`` (the paper's): 1 - cos(x, x_hat) = 1/2 ||x/|x| - x_hat/|x_hat| ||^2 exactly, so
  the columns of the normalised difference, halved, sum to the score.
* ``knn`` and ``iforest``: (x_j - r_j)^2 against the nearest kept reference row r, which is
  also the "expected" row.

The expected value of a column is the reconstruction (or the nearest reference row) decoded
like the data: a number in the input's units, or the category its one-hot group points to.
Pure functions: arrays and a fitted detector in, plain dicts out.
"""

from __future__ import annotations

import numpy as np
import torch

from deepuad.estimators.parts import PARTS
from deepuad.inputs.decoding import Decoder

METHODS = {
    "combined": "squared reconstruction error per column (the autoencoder part of the combined score)",
    "l2": "squared reconstruction error per column",
    "cosine": "cosine error per column: (x/|x| - x_hat/|x_hat|)^2 / 2, sums to the score",
    "knn": "squared difference per column to the nearest kept training row",
    "iforest": "squared difference per column to the nearest kept training row",
}


def expected_rows(detector, X: np.ndarray) -> np.ndarray:
    """What the model expected for each row: its reconstruction, or (knn, iforest) the nearest
    row of the kept reference sample."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if detector.score in ("knn", "iforest"):
        reference = np.asarray(detector.reference_, dtype=np.float32)
        nearest = np.empty(len(X), dtype=np.int64)
        for start in range(0, len(X), 1024):
            block = X[start : start + 1024]
            distances = (block**2).sum(1)[:, None] - 2 * block @ reference.T + (reference**2).sum(1)[None, :]
            nearest[start : start + len(block)] = np.argmin(distances, axis=1)
        return reference[nearest]
    model = detector.model_
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parameter = next(model.parameters())
            out = model(torch.from_numpy(X).to(parameter.device, parameter.dtype))
    finally:
        model.train(was_training)
    return out.float().cpu().numpy()


def column_errors(detector, X: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per row and column of X, its share of the decomposed score (see the module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if detector.score == "cosine":
        eps = 1e-8
        x = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), eps)
        x_hat = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), eps)
        return 0.5 * (x - x_hat) ** 2
    return (X - expected) ** 2


def part_z_scores(detector, X: np.ndarray) -> list[dict]:
    """Per row, each score part as it enters the score: a robust z-score for a standardised part,
    the value itself for the others (parts.py)."""
    names = getattr(detector, "score_parts_", ())
    if len(names) < 2 or not hasattr(detector, "score_center_"):
        return [{} for _ in range(len(X))]
    values = detector.score_parts(np.ascontiguousarray(X, dtype=np.float32))
    z = [(values[name] - center) / scale if PARTS[name].standardised else values[name]
         for name, center, scale in zip(names, detector.score_center_, detector.score_scale_)]
    return [{name: float(part[i]) for name, part in zip(names, z)} for i in range(len(X))]


def explain_rows(detector, X: np.ndarray, decoder: Decoder, k: int = 5) -> list[dict]:
    """Per row of X: {"parts": {part: z}, "total": the decomposed error, "columns": the ``k``
    original columns contributing most, each {"column", "contribution", "share", "value",
    "expected"}}, largest first."""
    if len(X) == 0:
        return []
    expected = expected_rows(detector, X)
    errors = column_errors(detector, X, expected)
    starts = np.array([first for _, first, _ in decoder.groups], dtype=np.int64)
    per_column = np.add.reduceat(errors, starts, axis=1)
    values = decoder.group_values(X)
    expected_values = decoder.group_values(expected, expected=True)
    parts = part_z_scores(detector, X)
    out = []
    for i in range(len(X)):
        total = float(per_column[i].sum())
        order = np.argsort(-per_column[i], kind="stable")[:k]
        out.append({
            "parts": parts[i], "total": total,
            "columns": [{"column": decoder.groups[j][0], "contribution": float(per_column[i, j]),
                         "share": float(per_column[i, j] / total) if total > 0 else 0.0,
                         "value": values[i][j], "expected": expected_values[i][j]} for j in order],
        })
    return out


def why(explanation: dict, k: int | None = None) -> str:
    """One line: "service=private (61%, expected http); src_bytes=0 (20%, expected 232)"."""
    def short(value):
        return f"{value:.4g}" if isinstance(value, float) else value

    return "; ".join(f"{c['column']}={short(c['value'])} ({100 * c['share']:.0f}%, expected {short(c['expected'])})"
                     for c in explanation["columns"][:k])
