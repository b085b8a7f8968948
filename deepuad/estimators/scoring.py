"""How far a row is from the training set that Algorithm 1 kept: the parts of ``DeepUAD``'s score.

The paper scores a row by its cosine reconstruction error h(x) = 1 - cos(x, x_hat) alone
(``score="cosine"``). That error sees direction only: a row that is a scaled copy of a normal
row reconstructs "perfectly" (on the ODDS sets breastw and mammography, whose anomalies are
large values in many columns, it ranks anomalies *below* normal rows: AUROC 0.36 and 0.33).
The default, ``score="combined"``, weighs two views of the distance to the kept set:

* ``l2``: the squared reconstruction error ||x - x_hat||^2 of the autoencoder trained on it
  (direction and magnitude), taken as a logarithm: reconstruction errors are heavy-tailed, and
  on a linear scale a few huge errors would outvote the other part;
* ``iforest``: the isolation score of a forest grown on a sample of it (global, per column;
  bounded in (0, 1]).

Each part is put on one scale by a robust z-score, (value - median) / IQR, with median and
interquartile range taken over that same sample of kept rows (the IQR of the distinct values
where duplicates collapse it: ``robust_scale``), so neither part dominates by its units; the
combined score is their weighted mean, the forest counting twice (``WEIGHTS`` says why; higher =
more anomalous). ``knn`` (the mean distance
to the k nearest kept rows) is a third part offered alone.

How it was chosen (bench/results/panel_selection.md): on the odd-numbered half of the 36
ADBench sets, 2,000 rows each, seed 0, the log-L2 + forest mean had the best mean AUROC (0.738;
Isolation Forest on all rows 0.736, L2 alone 0.724, cosine 0.644) and the best mean rank of
19 columns, 17 candidates and 2 baselines (adding the k-NN part: 0.726; linear instead of log L2: 0.736; the
k-NN distance in the bottleneck code space alone 0.624, added 0.720). The even half
was looked at only afterwards (0.822 vs Isolation Forest 0.824). The weights came later, from full-size
KDDCUP (``WEIGHTS``): on the ADBench tuning half the forest counted twice scores 0.736 (0.738 equal),
on the held-out half 0.828 (0.822).

Every piece of state is a NumPy array, so a fitted scorer is stored in the model artifact as
HDF5 datasets and restored without unpickling anything (the forest's trees included).
"""

from __future__ import annotations

import numpy as np

from deepuad.estimators.params import MAX_CONTAMINATION

COMPONENTS = {
    "combined": ("l2", "iforest"),
    "l2": ("l2",),
    "cosine": ("cosine",),
    "knn": ("knn",),
    "iforest": ("iforest",),
}
SCORES = tuple(COMPONENTS)
FOREST_TREES = 100  # scikit-learn's defaults for IsolationForest
FOREST_SAMPLES = 256
_KNN_CHUNK = 4096  # query rows per distance computation: bounds the (chunk x reference) matrix

# How much each part counts in the combined score (a weighted mean of the parts' robust z-scores).
# The forest counts twice: the network's error also spikes on normal rows the kept set left out (p
# leaves out up to 30 % of the rows whatever the anomaly share), rows it never trained on, where the
# forest's per-column ranges are barely moved. On full-size KDDCUP the forest alone reaches 98.2-98.6
# AUROC and the error 85-94 (bench/results/kdd_parts.md); equal weights let the error pull the ranking.
# Chosen on the tuning half (bench/results/panel_selection.md, kdd_parts.md), checked on the held-out one.
WEIGHTS = {"l2": 1.0, "iforest": 2.0}


def part_weights(parts: tuple[str, ...]) -> np.ndarray:
    """The weight of each of ``parts`` in the combined score (1 for a part WEIGHTS does not name)."""
    return np.array([WEIGHTS.get(part, 1.0) for part in parts], dtype=np.float64)


# ----------------------------------------------------------------------------- k nearest kept rows
def knn_distances(reference: np.ndarray, X: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row of X to its k nearest reference rows.

    An exact copy of the row among the reference rows (the row itself, when a kept row is
    scored) is skipped once, so a kept row is scored against the *other* kept rows and a row
    scores the same whether or not it happened to be drawn into the reference sample.
    Brute force in float64 through one matrix product per chunk: on 100+ columns that is far
    faster than a k-d tree, and it imports nothing beyond NumPy."""
    reference = np.asarray(reference, dtype=np.float64)
    if len(reference) == 1:  # a one-row training set: nothing to skip, its distance is the score
        return np.sqrt(((np.asarray(X, dtype=np.float64) - reference) ** 2).sum(axis=1))
    k = max(1, min(k, len(reference) - 1))
    reference_norms = np.einsum("ij,ij->i", reference, reference)
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), _KNN_CHUNK):
        x = np.asarray(X[start : start + _KNN_CHUNK], dtype=np.float64)
        x_norms = np.einsum("ij,ij->i", x, x)
        squared = x_norms[:, None] - 2.0 * (x @ reference.T) + reference_norms[None, :]
        nearest = np.sort(np.partition(squared, k, axis=1)[:, : k + 1], axis=1)
        # |x|^2 - 2xy + |y|^2 leaves rounding noise where x == y: call "exact copy" what is
        # within that noise of 0
        self_match = nearest[:, 0] <= 1e-12 * (1.0 + x_norms)
        distances = np.sqrt(np.maximum(nearest, 0.0))
        out[start : start + len(x)] = np.where(self_match, distances[:, 1:].mean(axis=1), distances[:, :k].mean(axis=1))
    return out


# ----------------------------------------------------------------------------- isolation forest as arrays
def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the mean depth of an unsuccessful search in a binary search tree of n rows (Liu et al. 2008)."""
    n = np.asarray(n, dtype=np.float64)
    c = 2.0 * (np.log(np.maximum(n - 1.0, 1.0)) + np.euler_gamma) - 2.0 * (n - 1.0) / np.maximum(n, 1.0)
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, c))


def fit_forest(X: np.ndarray, random_state: int) -> dict[str, np.ndarray]:
    """An isolation forest grown by scikit-learn, exported as flat arrays (all trees' nodes
    concatenated, children indices global): left, right, feature, threshold, n_samples, roots."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=FOREST_TREES, max_samples=min(FOREST_SAMPLES, len(X)),
                             random_state=random_state).fit(np.asarray(X, dtype=np.float32))
    parts: dict[str, list[np.ndarray]] = {"left": [], "right": [], "feature": [], "threshold": [], "n_samples": []}
    roots, offset = [], 0
    for tree, features in zip(forest.estimators_, forest.estimators_features_):
        t = tree.tree_
        leaf = t.children_left == -1
        parts["left"].append(np.where(leaf, -1, t.children_left + offset))
        parts["right"].append(np.where(leaf, -1, t.children_right + offset))
        parts["feature"].append(np.where(leaf, 0, np.asarray(features)[np.maximum(t.feature, 0)]))
        parts["threshold"].append(t.threshold)
        parts["n_samples"].append(t.n_node_samples)
        roots.append(offset)
        offset += t.node_count
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    arrays = {"left": arrays["left"].astype(np.int64), "right": arrays["right"].astype(np.int64),
              "feature": arrays["feature"].astype(np.int64), "threshold": arrays["threshold"].astype(np.float64),
              "n_samples": arrays["n_samples"].astype(np.int64)}
    arrays["roots"] = np.asarray(roots, dtype=np.int64)
    arrays["max_samples"] = np.asarray([forest.max_samples_], dtype=np.int64)
    return arrays


FOREST_ARRAYS = ("left", "right", "feature", "threshold", "n_samples", "roots", "max_samples")


def check_forest(forest: dict[str, np.ndarray], n_features: int) -> None:
    """ValueError unless ``forest`` is a well-formed set of trees over ``n_features`` columns: a
    forest read from a file someone sent must not index out of range or walk in a loop."""
    missing = [name for name in FOREST_ARRAYS if name not in forest]
    if missing:
        raise ValueError(f"forest lacks {', '.join(missing)}")
    nodes = len(forest["left"])
    if any(np.ndim(forest[name]) != 1 or len(forest[name]) != nodes for name in FOREST_ARRAYS[:5]):
        raise ValueError("forest arrays differ in shape")
    left, right = np.asarray(forest["left"]), np.asarray(forest["right"])
    inner = left >= 0
    index = np.arange(nodes)
    # children come after their parent (scikit-learn grows depth first): every walk ends at a leaf
    if not (np.array_equal(inner, right >= 0) and (left[inner] > index[inner]).all() and (right[inner] > index[inner]).all()
            and (left < nodes).all() and (right < nodes).all() and (left >= -1).all() and (right >= -1).all()):
        raise ValueError("forest children out of range")
    # trees, not graphs: every node has at most one parent and no root has one, so a walk is a path
    # and the depth table of forest_scores is one pass over the nodes
    children = np.concatenate([left[inner], right[inner]])
    if len(np.unique(children)) != len(children) or np.isin(np.asarray(forest["roots"]), children).any():
        raise ValueError("forest nodes share a parent or a root has one")
    feature, roots = np.asarray(forest["feature"]), np.asarray(forest["roots"])
    if ((feature < 0) | (feature >= n_features)).any() or len(roots) == 0 or ((roots < 0) | (roots >= nodes)).any():
        raise ValueError("forest features or roots out of range")
    if (np.asarray(forest["n_samples"]) < 1).any() or np.size(forest["max_samples"]) != 1 or int(forest["max_samples"][0]) < 1:
        raise ValueError("forest sample counts are not positive")
    if not np.isfinite(np.asarray(forest["threshold"], dtype=np.float64)).all():
        raise ValueError("forest thresholds are not finite")


def _walk_tables(forest: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The forest rearranged for ``forest_scores``: a leaf points to itself and sends every row to
    it (threshold +inf), so a walk needs no test of where it stands, and each node carries the
    path length a row that ends there gets (its depth + c(n_samples)), so no depth is counted."""
    left, right, roots = forest["left"], forest["right"], forest["roots"]
    leaf = left < 0
    index = np.arange(len(left))
    # children[2 * node] = where a row goes when x[feature] <= threshold, children[2 * node + 1] otherwise
    children = np.stack([np.where(leaf, index, left), np.where(leaf, index, right)], axis=1).ravel()
    threshold = np.where(leaf, np.inf, forest["threshold"])
    depth = np.zeros(len(left), dtype=np.float64)
    level = np.asarray(roots)
    while level.size:  # breadth first: check_forest made every node the child of at most one node
        inner = level[~leaf[level]]
        level = np.concatenate([left[inner], right[inner]])
        depth[level] = np.concatenate([depth[inner], depth[inner]]) + 1
    path_length = depth + _average_path_length(forest["n_samples"])
    return children, forest["feature"], threshold, path_length, int(depth.max())


def forest_scores(forest: dict[str, np.ndarray], X: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """2^(-E[h(x)] / c(max_samples)) in (0, 1], higher = easier to isolate (scikit-learn's
    ``-score_samples``): every row walks all trees at once, one level per step. Flat ``np.take``
    lookups over chunks of 1,024 rows, whose node tables stay in cache, are faster than 2-D
    indexing over 4,096 rows and give the same scores to the bit (``deepuad score`` on KDDCUP's
    247k-row train half: 7.6 s before, 5.7-6.5 s after, bench/results/speed_pipeline.md)."""
    children, feature, threshold, path_length, levels = _walk_tables(forest)
    roots = forest["roots"]
    # c(1) = 0: a forest grown on one row isolates nothing; every row scores 1 instead of 0 / 0
    normaliser = max(1.0, float(_average_path_length(forest["max_samples"][0])))
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), chunk):
        # float32 like scikit-learn's trees, which compare float32 features with float64 thresholds
        x = np.ascontiguousarray(X[start : start + chunk], dtype=np.float32)
        flat = x.ravel()  # a view: x is contiguous
        row_starts = (np.arange(len(x)) * x.shape[1])[:, None]  # where each row begins in flat
        node = np.broadcast_to(roots, (len(x), len(roots))).copy()
        for _ in range(levels):
            goes_right = np.take(flat, row_starts + np.take(feature, node)) > np.take(threshold, node)
            node = np.take(children, 2 * node + goes_right)
        out[start : start + len(x)] = 2.0 ** (-np.take(path_length, node).mean(axis=1) / normaliser)
    return out


# ----------------------------------------------------------------------------- one scale for all parts
def for_combining(part: str, values: np.ndarray) -> np.ndarray:
    """A part as it enters the combined score: distances and errors on a log scale (heavy tails)."""
    if part in ("l2", "knn"):
        return np.log(np.asarray(values, dtype=np.float64) + 1e-12)
    return np.asarray(values, dtype=np.float64)


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """(median, spread) of ``values``. The spread is the interquartile range of the values and of
    their distinct values, whichever is larger: exact duplicates (most kept rows of KDDCUP are
    copies of a few connections, and copies reconstruct with the same error) shrink the IQR of
    all values towards 0, and a part scaled by that gives other rows z-scores of 10^5 to 10^6,
    so it alone decides the combined score (AUROC 0.73 instead of 0.955 on KDDCUP 5 %, seed 3:
    bench/results/kddcup_runs.csv). Counting each value once cannot shrink the spread, only undo that collapse. Where both are
    0: the standard deviation, then 1."""
    values = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    distinct_q1, distinct_q3 = np.percentile(np.unique(values), [25, 75])
    for scale in (max(q3 - q1, distinct_q3 - distinct_q1), float(np.std(values))):
        if scale > 1e-12:
            return float(median), float(scale)
    return float(median), 1.0


def estimate_contamination(scores: np.ndarray, cutoff: float = 3.0) -> float:
    """The share of rows whose score lies more than ``cutoff`` robust standard deviations
    (1.4826 MAD) above the median: an estimate of the anomaly share that needs no guess.
    Kept in [1 / N, 0.5]."""
    scores = np.asarray(scores, dtype=np.float64)
    median = float(np.median(scores))
    spread = 1.4826 * float(np.median(np.abs(scores - median)))
    if spread <= 1e-12:
        spread = float(np.std(scores)) or 1.0
    share = float(np.mean(scores > median + cutoff * spread))
    return float(min(MAX_CONTAMINATION, max(1.0 / len(scores), share)))  # a valid contamination
