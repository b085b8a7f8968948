"""The parts of ``DeepUAD``'s score: each part says, in its own way, how far a row is from the
data, and each states which kind of anomaly it sees. The network's parts (``l2``, ``cosine``)
measure it against what the network learnt from the rows Algorithm 1 kept; the forest and the
range against a seeded sample of those kept rows (``fitted_on = "kept"``); the k-NN and tails parts
against the *reference*, a seeded sample of the rows (``DeepUAD`` draws it from all rows and trims it
by its tails, cleaning.tails_trim: ``Scorer.fit`` in scorer.py, the fitted score the parts make, says
why).

A part is a class with a ``name``, fitted on the reference or on the kept rows (``fitted_on``):

* ``fit(reference, seed)`` learns what it needs from the rows it is fitted on (``fitted_on``);
* ``values(X, errors)`` gives one value per row of X, higher = farther from the data
  (``errors`` holds the network's reconstruction errors of those rows, computed once for all
  parts, for a part that says it ``needs_network``);
* ``state()`` / ``restore(arrays, n_features)`` turn the fitted part into NumPy arrays and back
  (a model file holds no pickle); ``restore`` raises ValueError on arrays that could not have come
  from ``fit``, since a model file may come from someone else;
* ``stores``: each array ``state()`` holds, declared (``Stored``): a model file checks its arrays
  against these declarations, so the file format needs no change for a new part;
* ``options``: the DeepUAD parameters its constructor takes, of those ``Scorer`` hands over
  (``n_neighbors``: the k-NN part's k).

A part that is ``standardised`` enters the score as a robust z-score, (value - median) / IQR over
the rows it is fitted on, and those z-scores are averaged (weighted by ``WEIGHTS``); a part that is not
standardised is already in units of "how many ranges beyond the kept rows" and is added to
that mean, so that it cannot be averaged away.

Registering a part is one line in ``PARTS``: every part is then a score of its own, by its name
(``DeepUAD(score=name)``), that a model file stores and reads back; ``SCORES`` names the scores
that combine several parts, and ``BY_DATA`` those that choose their parts by the data (``resolve``;
the default, ``"auto"``, leaves the per-column parts out on wide data where they are noise, and there
takes the network's cosine error beside its squared error; on dense embeddings it leaves the tails part out
and weighs the k-NN part twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepuad.estimators import scoring


@dataclass(frozen=True)
class Stored:
    """One array of a fitted part's ``state()``, declared beside the part: a model file stores it
    as ``scorer/<name>`` with its ``description``, and checks it against this declaration when it
    is read (deepuad.artifacts.model makes the file's schema of the registered parts' ``stores``).

    ``kinds``: the NumPy dtype kinds it may have ("f" floats, "i" signed integers, "iu" any
    integers); ``ndim``: its rank; ``length`` and ``max_len``: its length along axis 0, exactly and
    at most; its values are finite, from ``low`` (above it with ``low_open``) to ``high``, and below
    ``below``. A bound is a number or refers to another of the scorer's arrays by its name in
    ``state()``: "len:NAME" its length, "dim:NAME:K" the length of its axis K, "value:NAME" its
    first value (``COLUMNS``, ``REFERENCE_ROWS``)."""

    kinds: str
    ndim: int
    description: str
    length: int | str | None = None
    max_len: int | str | None = None
    low: float | str | None = None
    high: float | str | None = None
    below: float | str | None = None
    low_open: bool = False


COLUMNS = "dim:reference:1"  # as many as the data has columns
BLOCK_ROWS = 16384  # rows a per-column part scores at a time: bounds its (rows x columns) temporaries
REFERENCE_ROWS = "len:reference"  # as many as the reference has rows


class Part:
    """One view of the distance from a row to the data (see the module docstring)."""

    name = ""
    covers = ""
    standardised = True
    needs_network = False
    options: tuple[str, ...] = ()
    # the rows it is fitted on: "reference", a seeded sample of all rows (less its rows far in its tails where
    # DeepUAD's reference_trim says so), or "kept", a seeded sample of the rows the cleaning kept (a part
    # fitted on the kept rows may not need the network)
    fitted_on = "reference"
    # the arrays ``state()`` holds, by name
    stores: dict[str, Stored] = {}

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
    """The paper's h(x) = 1 - cos(x, decode(encode(x))): the direction of a row only. Blind to
    magnitude, so it ranks large values in many columns (breastw's anomalies) below normal rows on a
    table; on wide rows of pixels or image embeddings (non-negative, mostly zero) a row's length is
    mostly how much of it is lit, which varies among normal rows, and its direction is what it shows:
    there it joins the default (``resolve``)."""

    name = "cosine"
    covers = "rows whose direction the network cannot reproduce (blind to magnitude): what an image shows"
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
    stores = {"knn/reference": Stored("f", 2, "the distinct rows of scorer/reference: the k-NN part's neighbours",
                                      max_len=REFERENCE_ROWS)}

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


class KeptForest(Part):
    """The isolation score of a forest grown on a sample of the rows the cleaning kept (bounded in
    (0, 1]: it cannot tell a value just outside their range from one far outside it). On the kept
    rows, not on all rows: anomalies that are many and alike (a fifth of KDDCUP) get a branch of
    their own in a forest grown among them, and a short path no longer sets them apart."""

    name = "iforest"
    covers = "global anomalies, per column (saturates beyond the kept rows' range)"
    fitted_on = "kept"
    # its trees, nodes concatenated (scoring.check_forest checks that they are trees, and of what depth)
    NODES = "len:forest/left"
    MAX_TREES = 4096  # the most trees a model file may hold (fit_forest grows 100)
    stores = {
        "forest/left": Stored("i", 1, "isolation forest: left child of each node (-1 = leaf), all trees concatenated",
                              low=-1, below=NODES),
        "forest/right": Stored("i", 1, "isolation forest: right child of each node (-1 = leaf)", length=NODES, low=-1,
                               below=NODES),
        "forest/feature": Stored("iu", 1, "isolation forest: column each node splits on", length=NODES, low=0,
                                 below=COLUMNS),
        "forest/threshold": Stored("f", 1, "isolation forest: split value of each node (go left when x <= it)",
                                   length=NODES),
        "forest/n_samples": Stored("iu", 1, "isolation forest: training rows that reached each node", length=NODES,
                                   low=1, high="value:forest/max_samples"),
        "forest/roots": Stored("iu", 1, "isolation forest: index of each tree's root node", max_len=MAX_TREES, low=0,
                               below=NODES),
        "forest/max_samples": Stored("iu", 1, "isolation forest: rows each tree was grown on", length=1, low=1,
                                     high=REFERENCE_ROWS),
    }

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
    normal rows. Its value is *calibrated* by the level L that normal rows reach by chance, the 95th
    percentile of its values on a seeded half of its rows, fitted on the other half (0 on a table of
    a few columns, several ranges on 784 pixels, where one rare stroke lies beyond some pixel's
    range): it is (d - L) / (1 + L) for a row d ranges out, 0 below L, so that it counts in units
    of that level. The 95th, not the 99th, percentile: the kept rows may hold a few per cent of
    anomalies (spikes the cleaning kept), and a level they set would swallow every spike. Stored
    as a span of (1 + L) ranges and an offset of L / (1 + L) such spans (``span_``, ``offset_``):
    the value is max(beyond / span - offset, 0) whatever the level (a model from before the
    calibration stores an offset of 0).

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
    BY_CHANCE = 0.95  # the quantile of the held-out half's values taken as the level reached by chance
    stores = {  # one value per column, and the offset
        "range/low": Stored("f", 1, "range part: each column's low end of the kept range", length=COLUMNS),
        "range/high": Stored("f", 1, "range part: each column's high end of the kept range", length=COLUMNS),
        "range/span": Stored("f", 1, "range part: the unit of the distance beyond each column's kept range (the "
                             "range times 1 + the level normal rows reach by chance)",
                             length=COLUMNS, low=0, low_open=True),
        "range/offset": Stored("f", 1, "range part: the level its values reach by chance on normal rows, in units "
                               "of range/span, subtracted from them", length=1, low=0),
    }

    def fit(self, reference, seed):
        reference = np.asarray(reference, dtype=np.float64)
        by_chance = self._by_chance(reference, seed)
        level = float(np.quantile(by_chance, self.BY_CHANCE)) if len(by_chance) else 0.0
        self._fit_range(reference)
        self.span_, self.offset_ = self.span_ * (1 + level), level / (1 + level)
        return self

    def _by_chance(self, reference: np.ndarray, seed: int) -> np.ndarray:
        """The values, uncalibrated, of a seeded half of ``reference`` against the range of the other
        half: how far normal rows lie out by chance (none where there are not two halves)."""
        half = np.random.default_rng(seed).permutation(len(reference)) < len(reference) // 2
        if not (half.any() and (~half).any()):
            return np.empty(0)
        self.offset_ = 0.0
        return self._fit_range(reference[half]).values(reference[~half], {})

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
        for start in range(0, len(X), BLOCK_ROWS):
            x = np.asarray(X[start : start + BLOCK_ROWS], dtype=np.float64)
            beyond = np.maximum(np.maximum(x - self.high_, self.low_ - x), 0.0) / self.span_
            out[start : start + len(x)] = beyond.max(axis=1) if x.shape[1] else 0.0
        return np.maximum(out - getattr(self, "offset_", 0.0), 0.0)

    @property
    def level_(self) -> float:
        """L, the level normal rows reach by chance, in ranges (the offset is L / (1 + L) spans)."""
        return float(self.offset_ / (1.0 - self.offset_))

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


class Tails(Part):
    """How far into the tails of its columns a row lies, all columns together: the sum over columns
    of -log of the row's smaller empirical tail probability there, (rows at or below it + 1) / (n + 1)
    or (rows at or above it + 1) / (n + 1) among the n rows it is fitted on (ECOD's outlier score, Li
    et al., TKDE 2022). A row that is only somewhat unusual in each of many columns adds up; a group of
    anomalies far from the normal modes but close to one another (clustered anomalies) is each
    other's nearest neighbours, which hides it from the k-NN part, but it lies in the tails of every
    column it leaves the normal modes in. Bounded by log(n + 1) per column: the range part, not this
    one, grows with the distance beyond the range."""

    name = "tails"
    covers = "clustered anomalies: a tight group far out in many columns at once (each other's neighbours)"
    stores = {"tails/sorted": Stored("f", 2, "tails part: each column of the rows it is fitted on, sorted (their "
                                     "empirical distribution)", max_len=REFERENCE_ROWS)}

    def fit(self, reference, seed):
        self.sorted_ = np.sort(np.asarray(reference, dtype=np.float32), axis=0)
        return self

    def values(self, X, errors):
        n = len(self.sorted_)
        columns = np.ascontiguousarray(self.sorted_.T)  # each sorted column contiguous, once per call
        out = np.zeros(len(X), dtype=np.float64)
        for start in range(0, len(X), BLOCK_ROWS):
            x = np.asarray(X[start : start + BLOCK_ROWS], dtype=np.float32).T
            for column, values in zip(columns, x):
                below = np.searchsorted(column, values, side="right")
                above = n - np.searchsorted(column, values, side="left")
                out[start : start + x.shape[1]] -= np.log((np.minimum(below, above) + 1.0) / (n + 1.0))
        return out

    def state(self):
        return {"tails/sorted": self.sorted_}

    def restore(self, arrays, n_features):
        ordered = np.asarray(arrays["tails/sorted"], dtype=np.float32)
        if (ordered.ndim != 2 or ordered.shape[1] != n_features or not len(ordered) or not np.isfinite(ordered).all()
                or (np.diff(ordered, axis=0) < 0).any()):
            raise ValueError(f"scorer tails rows have shape {ordered.shape} or are not sorted finite columns; "
                             f"expected (>= 1, {n_features})")
        self.sorted_ = ordered
        return self


# every part by name; adding a part is a class above and one line here
PARTS: dict[str, type[Part]] = {part.name: part for part in (SquaredError, CosineError, NearestRows, KeptForest, OutsideRange,
                                                           Tails)}

# the scores that combine several parts (``score=``); every part is also a score alone, by its name
SCORES: dict[str, tuple[str, ...]] = {
    "distance": ("knn", "l2", "range"),
    "distance+forest": ("knn", "l2", "iforest", "range"),
    "distance+tails": ("knn", "l2", "range", "tails"),
    "knn+l2": ("knn", "l2"),
    "knn+l2+cosine": ("knn", "l2", "cosine"),
    "knn2+l2+range": ("knn", "l2", "range"),
    "combined": ("l2", "iforest"),
}

# the scores that choose their parts by the data (``resolve``): the score on each kind of data (``data_kind``)
BY_DATA: dict[str, dict[str, str]] = {"auto": {"narrow": "distance+tails", "wide": "knn+l2+cosine", "dense": "knn2+l2+range"}}
# wide data: at least this many columns, and normal rows lying at least this many ranges beyond the
# kept rows' range by chance (the range part's level L, fitted on the kept rows)
WIDE_COLUMNS = 200
WIDE_LEVEL = 2.0
# dense data: as many columns, normal rows within the range (L below WIDE_LEVEL), and in the median column
# no value held by more than this share of the kept rows (modal_share)
DENSE_MODAL_SHARE = 0.05

# a part's weight in the mean of the standardised parts' z-scores, per score (1 where not named)
WEIGHTS: dict[str, dict[str, float]] = {"knn2+l2+range": {"knn": 2.0}, "combined": {"l2": 1.0, "iforest": 2.0}}

# the paper's score, h(x) = 1 - cos(x, decoder(encoder(x))): the network alone, nothing fitted beside it
PAPER = ("cosine",)


def scores() -> tuple[str, ...]:
    """Every score's name (DeepUAD's ``score``): those that choose by the data, the combinations,
    then every part alone."""
    return (*BY_DATA, *SCORES, *(name for name in PARTS if name not in SCORES))


def parts_of(score: str) -> tuple[str, ...]:
    """The parts a score combines (a part's own name: that part alone; a score that chooses by the
    data: its parts on most data, ``resolve`` gives those it combines on given rows)."""
    score = BY_DATA[score]["narrow"] if score in BY_DATA else score
    return SCORES.get(score, (score,))


def modal_share(rows: np.ndarray) -> float:
    """The median over columns of the share of ``rows`` that hold the column's most common value: 0.5 and
    more where most rows share one value (sparse, binary, categorical columns), 1 / len(rows) where every
    value is distinct (embeddings, measurements)."""
    rows = np.asarray(rows)
    return float(np.median([np.unique(column, return_counts=True)[1].max() for column in rows.T]) / len(rows))


def data_kind(kept: np.ndarray, seed: int) -> str:
    """What ``resolve`` tells data by, from its kept rows (a seeded sample of them): "wide", "dense" or "narrow".

    Wide: at least ``WIDE_COLUMNS`` columns, and a range part fitted on the kept rows (as the score fits it,
    same seed) at a level of at least ``WIDE_LEVEL`` ranges: normal rows commonly lie far beyond some
    column's range by chance (pixels, most of them blank, a few inked). Dense: as many columns, a lower
    level, and distinct values in most columns (``modal_share`` at most ``DENSE_MODAL_SHARE``): sentence
    and image embeddings, hundreds of continuous columns none of which means much alone. Narrow: the
    rest, tables above all (L near 0, 1 on 0/1 columns), and many binary or categorical columns."""
    kept = np.asarray(kept)
    if kept.ndim != 2 or kept.shape[1] < WIDE_COLUMNS or len(kept) < 2:
        return "narrow"
    if OutsideRange().fit(kept, seed).level_ >= WIDE_LEVEL:
        return "wide"
    return "dense" if modal_share(kept) <= DENSE_MODAL_SHARE else "narrow"


def resolved_score(score: str, kept: np.ndarray, seed: int) -> str:
    """The score ``score`` stands for on data whose kept rows (a seeded sample of them) are ``kept``:
    itself, or for one that chooses by the data its entry in ``BY_DATA`` for the ``data_kind``."""
    return BY_DATA[score][data_kind(kept, seed)] if score in BY_DATA else score


def resolve(score: str, kept: np.ndarray, seed: int) -> tuple[str, ...]:
    """The parts ``score`` combines on data whose kept rows (a seeded sample of them) are ``kept``
    (``resolved_score``; its weights are ``WEIGHTS``' for that score).

    ``"auto"``: ``distance+tails`` on narrow data; on wide data ``knn+l2+cosine``, the k-NN part and the
    network's two errors alone; on dense data ``knn2+l2+range``, the k-NN part at weight 2, the squared
    error and the range part.

    On wide data the per-column parts are noise: a spike ten ranges out is no farther out than normal rows
    are by chance, so the range part cannot tell it and drowns the parts that can (a spike in one column
    moves the row away from every other row and from what the network reconstructs); the tails part,
    which reads the columns one at a time too, sits out with it (bench/wide_spikes.py measured the rule
    with the forest in its place). The paper's cosine error joins the squared error: on pixels and image
    embeddings a row's direction is what it shows (CosineError; bench/network_parts.py). Beside it, not
    in its place: the cosine error is bounded, blind to magnitude, and a spike in a later batch that the
    k-NN part and the squared error see can fall below normal rows with it alone beside the k-NN part
    (bench/wide_spike_strokes.py).

    On dense data the tails part sits out too: it sums each column's tail depth, and a single column of
    an embedding carries little of what a row shows; what sets a sentence apart is where it lies among
    the others, which the k-NN distance reads, so it weighs twice the network's error. Normal rows stay
    within the kept range there, so the range part stays and sees a spike (bench/part_weights.py; how the
    rule was chosen and what it gave out of sample: docs/results.md, tenth round). On a table the
    per-column parts stay, and the range sees its spikes."""
    return parts_of(resolved_score(score, kept, seed))


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
