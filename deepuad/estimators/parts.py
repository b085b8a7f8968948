"""The parts of ``DeepUAD``'s score, and the fitted score they make (``Scorer``): each part says,
in its own way, how far a row is from the data, and each states which kind of anomaly it sees.
The network's parts (``l2``, ``cosine``) measure it against what the network learnt from the rows
Algorithm 1 kept; the others against the *reference*, a seeded sample of the rows (``DeepUAD``
draws it from all rows: ``Scorer.fit`` says why).

A part is a class with a ``name``, fitted on the reference:

* ``fit(reference, seed)`` learns what it needs from the reference rows;
* ``values(X, errors)`` gives one value per row of X, higher = farther from the data
  (``errors`` holds the network's reconstruction errors of those rows, computed once for all
  parts, for a part that says it ``needs_network``);
* ``state()`` / ``restore(arrays, n_features)`` turn the fitted part into NumPy arrays and back
  (a model file holds no pickle); ``restore`` raises ValueError on arrays that could not have come
  from ``fit``, since a model file may come from someone else;
* ``options``: the DeepUAD parameters its constructor takes, of those ``Scorer`` hands over
  (``n_neighbors``: the k-NN part's k).

A part that is ``standardised`` enters the score as a robust z-score, (value - median) / IQR over
the reference rows, and those z-scores are averaged (weighted by ``WEIGHTS``); a part that is not
standardised is already in units of "how many ranges beyond the reference rows" and is added to
that mean, so that it cannot be averaged away.

Registering a part is one line in ``PARTS``: every part is then a score of its own, by its name
(``DeepUAD(score=name)``); ``SCORES`` names the scores that combine several parts.
"""

from __future__ import annotations

import numpy as np

from deepuad.estimators import scoring
from deepuad.estimators.rows import take_rows


class Part:
    """One view of the distance from a row to the data (see the module docstring)."""

    name = ""
    covers = ""
    standardised = True
    needs_network = False
    options: tuple[str, ...] = ()
    # the rows it is fitted on: "reference", a seeded sample of all rows, or "kept", one of the rows
    # the cleaning kept (a part fitted on the kept rows may not need the network)
    fitted_on = "reference"

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
    needs_network = True

    def values(self, X, errors):
        return np.log(np.asarray(errors["l2"], dtype=np.float64) + 1e-12)


class CosineError(Part):
    """The paper's h(x) = 1 - cos(x, decode(encode(x))): the direction of a row only."""

    name = "cosine"
    covers = "rows whose direction the network cannot reproduce (blind to magnitude)"
    needs_network = True

    def values(self, X, errors):
        return np.asarray(errors["cosine"], dtype=np.float64)


class NearestRows(Part):
    """log of the mean Euclidean distance to the k nearest *distinct* reference rows (an exact copy
    of the row skipped once): a row far from every other row, wherever it lies, also between
    normal modes. Copies of one row are one neighbour, so a handful of identical anomalies are
    still far from every other row instead of at distance 0 from each other."""

    name = "knn"
    covers = "local and global anomalies, copies of one odd row included: rows with no other row near them"
    options = ("n_neighbors",)

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

    It is fitted on the rows the cleaning kept, not on all rows: anomalies that are many and alike
    (a fifth of KDDCUP) widen the range of all rows over themselves, and the cleaning is what tells
    normal rows. Its value is *calibrated*: less the level normal rows reach by chance
    (``offset_``), the 99th percentile of its values on a seeded half of its rows, fitted on the other
    half: 0 on a table of a few columns, several ranges on 784 pixels, where one rare stroke lies
    beyond some pixel's range.

    A column's range is fenced so that the anomalies among its rows cannot widen it: it
    runs from the smallest to the largest value within ``FENCE`` inner ranges of the column's 1st
    and 99th percentiles (inner range = 99th - 1st percentile). A column constant on 98 % of the
    rows has no inner range; its range runs from its k-th smallest to its k-th largest value
    (k = 0.5 % of the rows, at least 2), where that is empty from the second smallest to the second
    largest, then the whole range, then 1."""

    name = "range"
    covers = "values beyond the range in any one column (a spike that only one column shows)"
    standardised = False
    fitted_on = "kept"
    FENCE = 3.0
    BY_CHANCE = 0.99  # the quantile of the held-out half's values taken as the level reached by chance

    def fit(self, reference, seed):
        reference = np.asarray(reference, dtype=np.float64)
        half = np.random.default_rng(seed).permutation(len(reference)) < len(reference) // 2
        self.offset_ = 0.0
        if half.any() and (~half).any():
            by_chance = self._fit_range(reference[half]).values(reference[~half], {})
            self.offset_ = float(np.quantile(by_chance, self.BY_CHANCE))
        return self._fit_range(reference)

    def _fit_range(self, reference: np.ndarray) -> "OutsideRange":
        """The fenced range of each column of ``reference`` (see the class docstring)."""
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
        return np.maximum(out - getattr(self, "offset_", 0.0), 0.0)

    def state(self):
        return {"range/low": self.low_, "range/high": self.high_, "range/span": self.span_,
                "range/offset": np.array([self.offset_])}

    def restore(self, arrays, n_features):
        low, high, span = (np.asarray(arrays[f"range/{name}"], dtype=np.float64) for name in ("low", "high", "span"))
        if any(a.shape != (n_features,) for a in (low, high, span)):
            raise ValueError(f"scorer range arrays do not have one value per column ({n_features})")
        if not (np.isfinite(low).all() and np.isfinite(high).all() and np.isfinite(span).all() and (span > 0).all()
                and (high >= low).all()):
            raise ValueError("scorer range arrays are not finite, or a span is not positive")
        offset = np.asarray(arrays["range/offset"], dtype=np.float64)
        if offset.shape != (1,) or not np.isfinite(offset).all() or offset[0] < 0:
            raise ValueError("scorer range offset is not one finite value >= 0")
        self.low_, self.high_, self.span_, self.offset_ = low, high, span, float(offset[0])
        return self


# every part by name; adding a part is a class above and one line here
PARTS: dict[str, type[Part]] = {part.name: part for part in (SquaredError, CosineError, NearestRows, ReferenceForest, OutsideRange)}

# the scores that combine several parts (``score=``); every part is also a score alone, by its name
SCORES: dict[str, tuple[str, ...]] = {
    "distance": ("knn", "l2", "range"),
    "distance+forest": ("knn", "l2", "iforest", "range"),
    "combined": ("l2", "iforest"),
}

# a part's weight in the mean of the standardised parts' z-scores, per score (1 where not named)
WEIGHTS: dict[str, dict[str, float]] = {"combined": {"l2": 1.0, "iforest": 2.0}}

# the paper's score, h(x) = 1 - cos(x, decoder(encoder(x))): the network alone, nothing fitted beside it
PAPER = ("cosine",)


def scores() -> tuple[str, ...]:
    """Every score's name (DeepUAD's ``score``): the combinations, then every part alone."""
    return (*SCORES, *(name for name in PARTS if name not in SCORES))


def parts_of(score: str) -> tuple[str, ...]:
    """The parts a score combines (a part's own name: that part alone)."""
    return SCORES.get(score, (score,))


def make(name: str, **options) -> Part:
    """A new, unfitted part by name, given the DeepUAD parameters it takes (its ``options``)."""
    part = PARTS[name]
    return part(**{option: options[option] for option in part.options})


def needs_network(parts: tuple[str, ...]) -> bool:
    """Whether a part of these needs the network's errors (an unknown name: no; ``Scorer.restore`` refuses it)."""
    return any(getattr(PARTS.get(part), "needs_network", False) for part in parts)


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


def reference_rows(rng: np.random.Generator, rows: np.ndarray, size: int) -> np.ndarray:
    """A seeded sample of ``rows``, at most ``size`` of them, sorted (all of them when fewer)."""
    if len(rows) > size:
        rows = np.sort(rng.choice(rows, size=size, replace=False))
    return rows


class Scorer:
    """A fitted score: the parts of ``score`` (``parts_``, by name ``score_parts_``) fitted on the
    reference rows (``reference_``; ``reference_kept_``: which of them the model kept, where explain
    takes a column's expected value from), the centre and scale of each part over the reference
    (``score_center_``, ``score_scale_``) and the parts' weights (``score_weights_``). The paper's
    score fits nothing: it has its part only.

    The parts that need the network are given the reconstruction errors of ``model`` (DeepUAD's
    autoencoder); a scorer whose parts need none scores with NumPy alone, so that answering which
    rows and why (``explain``) never imports torch for such a model. ``score_parts`` and
    ``decision_function`` give the surface ``explain`` reads, as DeepUAD's do."""

    def __init__(self, score: str, parts: tuple[str, ...], n_features: int, n_neighbors: int):
        self.score, self.score_parts_, self.n_features_in_ = score, tuple(parts), n_features
        self.parts_ = [make(name, n_neighbors=n_neighbors) for name in self.score_parts_]

    @classmethod
    def fit(cls, score: str, X, rows: np.ndarray, seed: int, n_neighbors: int, model=None, device="cpu",
            kept: np.ndarray | None = None, kept_rows: np.ndarray | None = None) -> "Scorer":
        """The score's parts fitted on the reference ``X[rows]`` (sorted indices), each one's centre and
        scale its median and spread over those rows. ``kept``: which reference rows the model kept.
        A part ``fitted_on`` "kept" (the range) is fitted on ``X[kept_rows]``, a sample of the rows
        the model kept (the reference where none is given).

        DeepUAD draws the reference from *all* rows, not the kept ones: the network learnt the kept
        rows, but measured against them only, every normal row the cleaning left out looks far from
        the data."""
        scorer = cls(score, parts_of(score), X.shape[1], n_neighbors)
        if scorer.score_parts_ == PAPER:
            return scorer
        scorer.reference_ = take_rows(X, rows)
        scorer.reference_kept_ = np.ones(len(rows), dtype=bool) if kept is None else kept
        fitted_on = {"reference": scorer.reference_}
        if any(part.fitted_on == "kept" for part in scorer.parts_):
            fitted_on["kept"] = scorer.reference_ if kept_rows is None else take_rows(X, kept_rows)
        scorer.parts_ = [part.fit(fitted_on[part.fitted_on], seed) for part in scorer.parts_]
        values, _, _ = scorer.values(scorer.reference_, model, device)
        centers, scales = zip(*(scoring.robust_scale(v) for v in values))
        scorer.score_center_, scorer.score_scale_ = np.array(centers), np.array(scales)
        scorer.score_weights_ = np.array([WEIGHTS.get(score, {}).get(part, 1.0) for part in scorer.score_parts_],
                                         dtype=np.float64)
        return scorer

    def values(self, X: np.ndarray, model=None, device="cpu", batch_size: int = 65536, with_codes: bool = False):
        """(each part's values, the bottleneck codes, the cosine errors) of the rows of X; the network
        ``model`` runs only where a part or ``with_codes`` needs it (codes and errors None otherwise)."""
        codes = cosines = None
        errors = {}
        if with_codes or needs_network(self.score_parts_):
            from deepuad.estimators.autoencoder import reconstruction_errors  # torch, for the network's parts only

            codes, cosines, squares = reconstruction_errors(model, X, batch_size=batch_size, device=device)
            errors = {"cosine": cosines, "l2": squares}
        return [np.asarray(part.values(X, errors), dtype=np.float64) for part in self.parts_], codes, cosines

    def combined(self, values: list[np.ndarray], weighted: bool = True) -> np.ndarray:
        """The score (float64) from the parts' values (``combine``); ``weighted=False``: their plain mean."""
        if len(values) == 1:
            return np.asarray(values[0], dtype=np.float64)
        weights = self.score_weights_ if weighted else np.ones(len(values))
        return combine(values, self.score_parts_, self.score_center_, self.score_scale_, weights)

    def scores(self, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(score, counting score) from the parts' values, float32. ``DeepUAD.fit`` estimates the
        anomaly share from the counting score: the plain mean of the parts where they are weighted
        (for ``score="combined"`` the forest's bounded score compresses the weighted score's upper
        tail, where the 3-robust-sigma count then finds almost nothing), else the score itself."""
        score = self.combined(values).astype(np.float32)
        if len(values) == 1 or (self.score_weights_ == 1).all():
            return score, score
        return score, self.combined(values, weighted=False).astype(np.float32)

    def score_parts(self, X, batch_size: int = 65536) -> dict[str, np.ndarray]:
        """Each part's values for the rows of X, by name: a scorer whose parts need no network."""
        values, _, _ = self.values(self._checked(X), batch_size=batch_size)
        return dict(zip(self.score_parts_, values))

    def decision_function(self, X, batch_size: int = 65536) -> np.ndarray:
        return self.scores(list(self.score_parts(X, batch_size).values()))[0]

    def _checked(self, X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the model expects {self.n_features_in_}")
        return X

    def state(self) -> dict[str, np.ndarray]:
        """The fitted scorer as NumPy arrays (``scorer/*`` in a model file); none for the paper's score."""
        if not hasattr(self, "reference_"):
            return {}
        arrays = {"scorer/reference": self.reference_, "scorer/score_center": self.score_center_,
                  "scorer/score_scale": self.score_scale_, "scorer/score_weights": self.score_weights_,
                  "scorer/reference_kept": self.reference_kept_.astype(np.uint8)}
        for part in self.parts_:
            arrays.update({f"scorer/{name}": values for name, values in part.state().items()})
        return arrays

    @classmethod
    def restore(cls, score: str, names: tuple[str, ...], arrays: dict[str, np.ndarray], n_features: int,
                n_neighbors: int) -> "Scorer":
        """A finished model's scorer from its ``state()`` arrays and the names of its parts, checked so
        that a corrupt or crafted file fails here (ValueError) instead of indexing out of range while
        scoring."""
        names = tuple(names)
        if names not in {parts_of(name) for name in scores()}:
            raise ValueError(f"unknown score parts {list(names)}")
        scorer = cls(score, names, n_features, n_neighbors)
        if names == PAPER:
            return scorer
        reference = np.asarray(arrays["scorer/reference"], dtype=np.float32)
        if reference.ndim != 2 or reference.shape[1] != n_features or len(reference) < 2:
            raise ValueError(f"scorer reference has shape {reference.shape}, expected (>= 2, {n_features})")
        center = np.asarray(arrays["scorer/score_center"], dtype=np.float64)
        scale = np.asarray(arrays["scorer/score_scale"], dtype=np.float64)
        weights = np.asarray(arrays["scorer/score_weights"], dtype=np.float64)
        if (center.shape != (len(names),) or scale.shape != (len(names),) or weights.shape != (len(names),)
                or not (weights > 0).all() or not np.isfinite(weights).all() or not np.isfinite(center).all()
                or not (scale > 0).all() or not np.isfinite(scale).all() or not np.isfinite(reference).all()):
            raise ValueError("scorer calibration is not finite or does not match its parts")
        kept = np.asarray(arrays["scorer/reference_kept"])  # which reference rows the model kept
        if kept.shape != (len(reference),) or not np.isin(kept, (0, 1)).all():
            raise ValueError(f"scorer reference_kept is not one 0 or 1 per reference row ({len(reference)})")
        stored = {name[len("scorer/"):]: values for name, values in arrays.items() if name.startswith("scorer/")}
        for part in scorer.parts_:
            try:
                part.restore(stored, n_features)
            except KeyError:
                raise ValueError(f"scorer lacks the arrays of its part {part.name}") from None
        scorer.reference_, scorer.reference_kept_ = reference, kept.astype(bool)
        scorer.score_center_, scorer.score_scale_, scorer.score_weights_ = center, scale, weights
        return scorer
