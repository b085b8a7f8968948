"""The parts of ``DeepUAD``'s score: each one says, in its own way, how far a row is from the data,
and each states which kind of anomaly it sees. The network's parts (``l2``, ``cosine``) measure
it against what the network learnt from the rows Algorithm 1 kept; the others against the
*reference*, a seeded sample of the rows (detector.DeepUAD._fit_scorer says which).

A part is a class with a ``name``, fitted on the reference:

* ``fit(reference, seed)`` learns what it needs from the reference rows;
* ``values(X, errors)`` gives one value per row of X, higher = farther from the data
  (``errors`` holds the network's reconstruction errors of those rows, computed once for all parts);
* ``state()`` / ``restore(arrays, n_features)`` turn the fitted part into NumPy arrays and back
  (a model file holds no pickle); ``restore`` raises ValueError on arrays that could not have come
  from ``fit``, since a model file may come from someone else.

A part that is ``standardised`` enters the score as a robust z-score, (value - median) / IQR over
the reference rows, and those z-scores are averaged (weighted by ``WEIGHTS``); a part that is not
standardised is already in units of "how many ranges beyond the reference rows" and is added to
that mean, so that it cannot be averaged away. Registering a part is one line in ``PARTS``; a
score is a tuple of part names in ``SCORES``.
"""

from __future__ import annotations

import numpy as np

from deepuad.estimators import scoring


class Part:
    """One view of the distance from a row to the data (see the module docstring)."""

    name = ""
    covers = ""
    standardised = True

    def fit(self, reference: np.ndarray, seed: int) -> "Part":
        return self

    def values(self, X: np.ndarray, errors: dict[str, np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def restore(self, arrays: dict[str, np.ndarray], n_features: int) -> "Part":
        return self


class SquaredError(Part):
    """log ||x - decode(encode(x))||^2 of the network trained on the kept rows: a row that breaks the
    dependencies between columns the network learnt (direction and magnitude). A logarithm, since
    reconstruction errors are heavy-tailed."""

    name = "l2"
    covers = "dependency anomalies: values that do not go together"

    def values(self, X, errors):
        return np.log(np.asarray(errors["l2"], dtype=np.float64) + 1e-12)


class CosineError(Part):
    """The paper's h(x) = 1 - cos(x, decode(encode(x))): the direction of a row only."""

    name = "cosine"
    covers = "rows whose direction the network cannot reproduce (blind to magnitude)"

    def values(self, X, errors):
        return np.asarray(errors["cosine"], dtype=np.float64)


class NearestRows(Part):
    """log of the mean Euclidean distance to the k nearest *distinct* reference rows (an exact copy
    of the row skipped once): a row far from every other row, wherever it lies, also between
    normal modes. Copies of one row are one neighbour, so a handful of identical anomalies are
    still far from every other row instead of at distance 0 from each other."""

    name = "knn"
    covers = "local and global anomalies, copies of one odd row included: rows with no other row near them"

    def __init__(self, n_neighbors: int):
        self.n_neighbors = n_neighbors

    def fit(self, reference, seed):
        self.reference_ = np.unique(np.asarray(reference, dtype=np.float32), axis=0)
        return self

    def values(self, X, errors):
        return np.log(scoring.knn_distances(self.reference_, X, self.n_neighbors) + 1e-12)

    def state(self):
        return {"knn/reference": self.reference_}

    def restore(self, arrays, n_features):
        reference = np.asarray(arrays["knn/reference"], dtype=np.float32)
        if reference.ndim != 2 or reference.shape[1] != n_features or not len(reference) or not np.isfinite(reference).all():
            raise ValueError(f"scorer k-NN rows have shape {reference.shape}, expected (>= 1, {n_features}) finite values")
        self.reference_ = reference
        return self


class ReferenceForest(Part):
    """The isolation score of a forest grown on the reference rows (bounded in (0, 1]: it cannot
    tell a value just outside the reference's range from one far outside it)."""

    name = "iforest"
    covers = "global anomalies, per column (saturates beyond the reference's range)"

    def fit(self, reference, seed):
        self.forest_ = scoring.fit_forest(reference, random_state=seed)
        return self

    def values(self, X, errors):
        return scoring.forest_scores(self.forest_, X)

    def state(self):
        return {f"forest/{name}": values for name, values in self.forest_.items()}

    def restore(self, arrays, n_features):
        self.forest_ = {k[len("forest/"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("forest/")}
        scoring.check_forest(self.forest_, n_features)
        return self


class OutsideRange(Part):
    """How far a row lies beyond the range of the reference rows, in the column where it lies
    farthest, in units of that column's range: 0 inside the range, 10 for a value ten ranges above
    its maximum. Not standardised: it adds to the mean z-score of the other parts, so a value far
    outside the range always scores higher than one just outside it, however ordinary the rest of
    the row is (a forest or a mean of z-scores would average it away).

    A column's range is fenced so that the anomalies among the reference rows cannot widen it: it
    runs from the smallest to the largest value within ``FENCE`` inner ranges of the column's 1st
    and 99th percentiles (inner range = 99th - 1st percentile). A column constant on 98 % of the
    rows has no inner range; its range runs from its k-th smallest to its k-th largest value
    (k = 0.5 % of the rows, at least 2), where that is empty from the second smallest to the second
    largest, then the whole range, then 1."""

    name = "range"
    covers = "values beyond the range in any one column (a spike that only one column shows)"
    standardised = False
    FENCE = 3.0

    def fit(self, reference, seed):
        reference = np.asarray(reference, dtype=np.float64)
        ordered = np.sort(reference, axis=0)
        n = len(ordered)
        # a column with almost no spread: between order statistics
        k = min(max(2, int(0.005 * n)), (n + 1) // 2)
        low, high = ordered[k - 1], ordered[n - k]
        span = high - low
        for fallback in (min(2, (n + 1) // 2), 1):
            wider = ordered[n - fallback] - ordered[fallback - 1]
            empty = span <= 1e-12
            low, high = np.where(empty, ordered[fallback - 1], low), np.where(empty, ordered[n - fallback], high)
            span = np.where(empty, wider, span)
        span = np.where(span > 1e-12, span, 1.0)
        # every other column: the values inside the fence around its 1st-99th percentile range
        k = max(1, int(np.ceil(0.01 * n)))
        inner_low, inner_high = ordered[k - 1], ordered[n - k]
        inner = inner_high - inner_low
        fenced = inner > 1e-12
        inside = (reference >= inner_low - self.FENCE * inner) & (reference <= inner_high + self.FENCE * inner)
        fenced_low = np.where(inside, reference, np.inf).min(axis=0)
        fenced_high = np.where(inside, reference, -np.inf).max(axis=0)
        self.low_ = np.where(fenced, fenced_low, low)
        self.high_ = np.where(fenced, fenced_high, high)
        self.span_ = np.where(fenced, np.maximum(self.high_ - self.low_, 1e-12), span)
        return self

    def values(self, X, errors):
        out = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), 16384):  # bounds the (rows x columns) temporaries
            x = np.asarray(X[start : start + 16384], dtype=np.float64)
            beyond = np.maximum(np.maximum(x - self.high_, self.low_ - x), 0.0) / self.span_
            out[start : start + len(x)] = beyond.max(axis=1) if x.shape[1] else 0.0
        return out

    def state(self):
        return {"range/low": self.low_, "range/high": self.high_, "range/span": self.span_}

    def restore(self, arrays, n_features):
        low, high, span = (np.asarray(arrays[f"range/{name}"], dtype=np.float64) for name in ("low", "high", "span"))
        if any(a.shape != (n_features,) for a in (low, high, span)):
            raise ValueError(f"scorer range arrays do not have one value per column ({n_features})")
        if not (np.isfinite(low).all() and np.isfinite(high).all() and np.isfinite(span).all() and (span > 0).all()
                and (high >= low).all()):
            raise ValueError("scorer range arrays are not finite, or a span is not positive")
        self.low_, self.high_, self.span_ = low, high, span
        return self


# every part by name; adding a part is a class above and one line here
PARTS: dict[str, type[Part]] = {part.name: part for part in (SquaredError, CosineError, NearestRows, ReferenceForest, OutsideRange)}

# every score DeepUAD offers (``score=``): the parts it combines
SCORES: dict[str, tuple[str, ...]] = {
    "distance": ("knn", "l2", "range"),
    "distance+forest": ("knn", "l2", "iforest", "range"),
    "combined": ("l2", "iforest"),
    "l2": ("l2",),
    "cosine": ("cosine",),
    "knn": ("knn",),
    "iforest": ("iforest",),
}

# a part's weight in the mean of the standardised parts' z-scores, per score (1 where not named)
WEIGHTS: dict[str, dict[str, float]] = {"combined": {"l2": 1.0, "iforest": 2.0}}


def make(name: str, n_neighbors: int) -> Part:
    """A new, unfitted part by name (the k-NN part takes its k, DeepUAD's ``n_neighbors``)."""
    return PARTS[name](n_neighbors) if name == "knn" else PARTS[name]()


def weights_of(score: str, parts: tuple[str, ...]) -> np.ndarray:
    return np.array([WEIGHTS.get(score, {}).get(part, 1.0) for part in parts], dtype=np.float64)


def needs_network(parts: tuple[str, ...]) -> bool:
    return any(part in ("l2", "cosine") for part in parts)


def combine(values: list[np.ndarray], parts: tuple[str, ...], center: np.ndarray, scale: np.ndarray,
            weights: np.ndarray) -> np.ndarray:
    """The score from the parts' raw values: the weighted mean of the standardised parts' robust
    z-scores, plus the parts that are not standardised; one part alone is its raw value."""
    if len(parts) == 1:
        return np.asarray(values[0], dtype=np.float64)
    standard = [i for i, name in enumerate(parts) if PARTS[name].standardised]
    z = [(values[i] - center[i]) / scale[i] for i in standard]
    score = np.average(z, axis=0, weights=weights[standard]) if z else np.zeros(len(values[0]))
    for i, name in enumerate(parts):
        if not PARTS[name].standardised:
            score = score + values[i]
    return score


def restore_scorer(arrays: dict[str, np.ndarray], parts: tuple[str, ...], n_features: int, n_neighbors: int) -> dict:
    """A finished model's fitted scorer from its arrays (``scorer/*``), as the attributes a detector
    holds (``reference_``, ``score_center_``, ``score_scale_``, ``score_weights_``, ``parts_``),
    checked so that a corrupt or crafted file fails here (ValueError) instead of indexing out of
    range while scoring."""
    if tuple(parts) not in SCORES.values():
        raise ValueError(f"unknown score parts {list(parts)}")
    reference = np.asarray(arrays["scorer/reference"], dtype=np.float32)
    if reference.ndim != 2 or reference.shape[1] != n_features or len(reference) < 2:
        raise ValueError(f"scorer reference has shape {reference.shape}, expected (>= 2, {n_features})")
    center = np.asarray(arrays["scorer/score_center"], dtype=np.float64)
    scale = np.asarray(arrays["scorer/score_scale"], dtype=np.float64)
    weights = np.asarray(arrays["scorer/score_weights"], dtype=np.float64)
    if (center.shape != (len(parts),) or scale.shape != (len(parts),) or weights.shape != (len(parts),)
            or not (weights > 0).all() or not np.isfinite(weights).all() or not np.isfinite(center).all()
            or not (scale > 0).all() or not np.isfinite(scale).all() or not np.isfinite(reference).all()):
        raise ValueError("scorer calibration is not finite or does not match its parts")
    stored = {k[len("scorer/"):]: v for k, v in arrays.items() if k.startswith("scorer/")}
    missing = [name for name in parts if PARTS[name] is OutsideRange and "range/low" not in stored]
    if missing:
        raise ValueError(f"scorer lacks the arrays of its part {missing[0]}")
    kept = np.asarray(arrays["scorer/reference_kept"])  # which reference rows the model kept
    if kept.shape != (len(reference),) or not np.isin(kept, (0, 1)).all():
        raise ValueError(f"scorer reference_kept is not one 0 or 1 per reference row ({len(reference)})")
    fitted = [make(name, n_neighbors).restore(stored, n_features) for name in parts]
    return {"reference_": reference, "reference_kept_": kept.astype(bool), "score_center_": center, "score_scale_": scale,
            "score_weights_": weights, "parts_": fitted}


class NumpyScorer:
    """A finished model's score when none of its parts needs the network (``knn``, ``iforest``
    alone): the same numbers as the model's DeepUAD gives, from NumPy alone, so that answering
    which rows and why (``explain``) never imports torch for such a model. It has the scoring
    surface ``explain`` uses: ``score``, ``score_parts_``, the fitted scorer's attributes,
    ``decision_function`` and ``score_parts``."""

    def __init__(self, score: str, arrays: dict[str, np.ndarray], parts: tuple[str, ...], n_features: int,
                 n_neighbors: int):
        self.score, self.score_parts_, self.n_features_in_ = score, parts, n_features
        for name, value in restore_scorer(arrays, parts, n_features, n_neighbors).items():
            setattr(self, name, value)

    def score_parts(self, X, batch_size: int = 65536) -> dict[str, np.ndarray]:
        X = self._checked(X)
        return {name: np.asarray(part.values(X, {}), dtype=np.float64) for name, part in zip(self.score_parts_, self.parts_)}

    def decision_function(self, X, batch_size: int = 65536) -> np.ndarray:
        values = list(self.score_parts(X).values())
        return combine(values, self.score_parts_, self.score_center_, self.score_scale_, self.score_weights_).astype(np.float32)

    def _checked(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the model expects {self.n_features_in_}")
        return X
