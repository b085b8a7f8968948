"""Why a row scores high: the original columns behind its score, and what the model expected there.

A column's contribution is how much the row's score falls when that column alone is set to its
expected value (a categorical column's one-hot group as a whole):

    contribution_j = score(x) - score(x with column j at its expected value)

The score is the detector's whole score (``decision_function``), whatever its parts are
(reconstruction error, isolation forest, k-NN distance): nothing here depends on which, so a
part that cannot be split by column on its own (the forest) is accounted for too. A column
whose value is its expected value contributes exactly 0 (its replaced row IS the row), so it is
never blamed. The parts interact, so contributions need not add up to the score; a negative one
means the row would look *more* anomalous with that column at its expected value. ``share``
is a contribution over the sum of the positive ones. For a score of several parts, each column
also gets the same fall in each part's robust z-score (the combined score is their weighted
mean), so one sees which part a column moved: the reconstruction error, the forest.

The expected value of a column is what the kept rows that resemble this row hold there: over
the NEIGHBOURS kept rows of the detector's reference sample (``reference_kept_``) nearest the row
in its *other* columns, the median of a number, or the most common category. So it always lies
within what normal rows hold, however far the row's own value is; a reconstruction would be
pulled towards a spike. A model that keeps no rows (the paper's ``cosine`` score) expects its
reconstruction, each one-hot group read as the category it points to most. The row is scored
with that number, or that category's one-hot encoding, in the column's place; the expected
value is reported decoded like the data.

Pure functions: arrays and a fitted detector in, plain dicts out.
"""

from __future__ import annotations

import numpy as np

from deepuad.estimators.parts import PARTS
from deepuad.inputs.decoding import UNSEEN_BELOW, Decoder

# what a column's contribution is (``explain``'s "method")
METHOD = "the fall in the whole score when the column is set to its expected value"
# kept rows a column's expected value is taken from
NEIGHBOURS = 5
# how many floats one block of rows may take (rows x columns x width, or rows x kept rows x width)
_BLOCK_VALUES = 1 << 24


def expected_rows(detector, X: np.ndarray, decoder: Decoder) -> np.ndarray:
    """X with every column at the value the model expected there, encoded as X is (see the
    module docstring): from the nearest kept rows, or the reconstruction for a model that keeps
    none (the ``cosine`` score)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    reference = getattr(detector, "reference_", None)
    if reference is not None:
        kept = getattr(detector, "reference_kept_", None)
        if kept is not None and kept.sum() >= NEIGHBOURS:  # anomalies among the reference would expect themselves
            reference = reference[kept]
    if reference is None:
        return _categories_snapped(decoder, X, detector.reconstruct(X))
    return _neighbour_values(decoder, X, np.asarray(reference, dtype=np.float32))


def _neighbour_values(decoder: Decoder, X: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row and column: over the NEIGHBOURS reference rows nearest the row in its *other*
    columns, the median of the column (a number) or the most common category (ties: the
    nearest row's), encoded as that row holds it; the row's own group where it already holds
    that category."""
    k = min(NEIGHBOURS, len(reference))
    starts = np.array([min(first, X.shape[1] - 1) for _, first, _ in decoder.groups])
    empty = np.array([stop == first for _, first, stop in decoder.groups])  # a category list with no category
    categories = {j: _category_index(decoder, reference, first, stop) for j, (name, first, stop) in enumerate(decoder.groups)
                  if name in decoder.vocabularies}
    own = {j: _category_index(decoder, X, *decoder.groups[j][1:]) for j in categories}
    out = np.empty_like(X)
    block = max(1, _BLOCK_VALUES // (len(reference) * X.shape[1]))
    for begin in range(0, len(X), block):
        rows = X[begin : begin + block]
        squares = (rows[:, None, :] - reference[None]) ** 2  # (rows, reference, width)
        per_group = np.add.reduceat(squares, starts, axis=2)  # (rows, reference, groups)
        per_group[:, :, empty] = 0.0  # reduceat gives an empty group the next column's value
        others = squares.sum(axis=2, keepdims=True) - per_group
        nearest = np.argpartition(others, k - 1, axis=1)[:, :k, :]
        nearest = np.take_along_axis(nearest, np.argsort(np.take_along_axis(others, nearest, axis=1), axis=1, kind="stable"),
                                     axis=1)  # (rows, k, groups), nearest first
        for j, (_, first, stop) in enumerate(decoder.groups):
            chosen = nearest[:, :, j]
            if j not in categories:
                out[begin : begin + len(rows), first] = np.median(reference[chosen, first], axis=1)
                continue
            for i, neighbours in enumerate(chosen):
                labels = categories[j][neighbours] + 1  # 0: no category
                position = int(np.argmax(np.bincount(labels)[labels]))  # the most common; ties: the nearest
                source = X[begin + i] if own[j][begin + i] + 1 == labels[position] else reference[neighbours[position]]
                out[begin + i, first:stop] = source[first:stop]
    return out


def _category_index(decoder: Decoder, X: np.ndarray, first: int, stop: int) -> np.ndarray:
    """The category each row's one-hot group ``first:stop`` holds (its largest entry, scaling
    undone), -1 for none (a category unseen in training), as ``Decoder`` reads it."""
    if stop == first:
        return np.full(len(X), -1)
    group = X[:, first:stop] * decoder.scale[first:stop] + decoder.offset[first:stop]
    best = np.argmax(group, axis=1)
    return np.where(group[np.arange(len(group)), best] >= UNSEEN_BELOW, best, -1)


def _categories_snapped(decoder: Decoder, X: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """The reconstruction with each categorical group replaced by the one-hot encoding of the
    category it points to most (the row's own group where it already holds that category)."""
    out = np.array(reconstruction, dtype=np.float32)
    for name, first, stop in decoder.groups:
        if name not in decoder.vocabularies or stop == first:
            continue
        best = np.argmax(out[:, first:stop] * decoder.scale[first:stop] + decoder.offset[first:stop], axis=1)
        own = _category_index(decoder, X, first, stop)
        one_hot = np.eye(stop - first)[best]
        out[:, first:stop] = np.where((own == best)[:, None], X[:, first:stop],
                                      (one_hot - decoder.offset[first:stop]) / decoder.scale[first:stop])
    return out


def column_contributions(detector, X: np.ndarray, decoder: Decoder, replaced: np.ndarray) -> tuple[np.ndarray, dict]:
    """(rows, original columns): score(x) - score(x with that column's group taken from
    ``replaced``), exactly 0 where the group is unchanged; and the same fall in each score
    part's robust z-score ({part: (rows, columns)}; empty for a score of one part)."""
    X = np.asarray(X, dtype=np.float32)
    groups = decoder.groups
    unchanged = np.column_stack([(replaced[:, first:stop] == X[:, first:stop]).all(axis=1) for _, first, stop in groups])
    out = np.zeros((len(X), len(groups)))
    parts = {name: np.zeros((len(X), len(groups))) for name in _part_z(detector, X[:1])}
    block = max(1, _BLOCK_VALUES // (len(groups) * X.shape[1]))
    for start in range(0, len(X), block):
        rows, new = X[start : start + block], replaced[start : start + block]
        variants = np.repeat(rows[:, None, :], len(groups), axis=1)  # (rows, groups, width): one column replaced each
        for j, (_, first, stop) in enumerate(groups):
            variants[:, j, first:stop] = new[:, first:stop]
        # the row itself is scored in the same call, so that its score and its variants' share one batch
        both = np.concatenate([rows, variants.reshape(-1, X.shape[1])])
        for name, values in [("score", detector.decision_function(both)), *_part_z(detector, both).items()]:
            values = np.asarray(values, dtype=np.float64)
            fall = values[: len(rows), None] - values[len(rows) :].reshape(len(rows), len(groups))
            (out if name == "score" else parts[name])[start : start + len(rows)] = fall
    for values in (out, *parts.values()):
        values[unchanged] = 0.0
    return out, parts


def _part_z(detector, X: np.ndarray) -> dict[str, np.ndarray]:
    """Each score part as it enters the score, per row ({} for a score of one part): a robust
    z-score for a standardised part, the value itself for the others (parts.py)."""
    names = getattr(detector, "score_parts_", ())
    if len(names) < 2 or not hasattr(detector, "score_center_"):
        return {}
    parts = detector.score_parts(X)
    return {name: (parts[name] - center) / scale if PARTS[name].standardised else parts[name]
            for name, center, scale in zip(names, detector.score_center_, detector.score_scale_)}


def explain_rows(detector, X: np.ndarray, decoder: Decoder, k: int = 5) -> list[dict]:
    """Per row of X: {"parts": {part: z}, "total": the sum of the positive contributions,
    "columns": the ``k`` original columns contributing most, each {"column", "contribution",
    "share", "value", "expected", "parts": {part: the fall in its z-score}}}, largest first."""
    if len(X) == 0:
        return []
    X = np.ascontiguousarray(X, dtype=np.float32)
    expected = expected_rows(detector, X, decoder)
    per_column, per_part = column_contributions(detector, X, decoder, expected)
    values = decoder.group_values(X)
    expected_values = decoder.group_values(expected, expected=True)
    parts = _part_z(detector, X)
    out = []
    for i in range(len(X)):
        total = float(np.clip(per_column[i], 0, None).sum())
        order = np.argsort(-per_column[i], kind="stable")[:k]
        out.append({
            "parts": {name: float(z[i]) for name, z in parts.items()}, "total": total,
            "columns": [{"column": decoder.groups[j][0], "contribution": float(per_column[i, j]),
                         "share": float(per_column[i, j] / total) if total > 0 else 0.0,
                         "value": values[i][j], "expected": expected_values[i][j],
                         "parts": {name: float(fall[i, j]) for name, fall in per_part.items()}} for j in order],
        })
    return out


def why(explanation: dict, k: int | None = None) -> str:
    """One line: "service=private (61%, expected http); src_bytes=0 (20%, expected 232)"."""
    def short(value):
        return f"{value:.4g}" if isinstance(value, float) else value

    return "; ".join(f"{c['column']}={short(c['value'])} ({100 * c['share']:.0f}%, expected {short(c['expected'])})"
                     for c in explanation["columns"][:k])
