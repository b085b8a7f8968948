"""The numerical pieces of ``DeepUAD``'s score parts (parts.py): the distance to the k nearest
kept rows, an isolation forest grown by our own NumPy code (``fit_forest``) and walked as flat
arrays (``forest_scores``), the robust scale every standardised part is put on
(``robust_scale``), and the anomaly-share rule (``estimate_contamination``).

Every piece of state is a NumPy array, so a fitted scorer is stored in the model artifact as
HDF5 datasets and restored without unpickling anything (the forest's trees included).
"""

from __future__ import annotations

import numpy as np

from deepuad.estimators.params import MAX_CONTAMINATION

FOREST_TREES = 100  # scikit-learn's defaults for IsolationForest
FOREST_SAMPLES = 256
# scikit-learn's: a feature whose max <= min + this on a node's rows is constant there. scikit-learn adds it
# in float32 (from 2.0 up only equal values count as constant); we add in float64: they differ only on values
# within 1e-7 of each other
FEATURE_THRESHOLD = 1e-7
_RANGE_BLOCK = 1 << 20  # values read at once when every candidate feature of some nodes is ranged
# the (query rows x reference rows) float64 distance matrix is computed this many bytes at a time:
# few enough to stay in cache (on 2,000 reference rows about twice as fast as 4,096 rows at a time,
# the same distances to the bit) and to bound memory whatever reference a model holds
_KNN_BLOCK_BYTES = 4 << 20


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
    chunk = max(1, _KNN_BLOCK_BYTES // (8 * len(reference)))
    for start in range(0, len(X), chunk):
        x = np.asarray(X[start : start + chunk], dtype=np.float64)
        x_norms = np.einsum("ij,ij->i", x, x)
        squared = x @ reference.T  # then |x|^2 - 2xy + |y|^2, in place (the same operations, in the same order)
        squared *= 2.0
        np.subtract(x_norms[:, None], squared, out=squared)
        squared += reference_norms
        squared.partition(k, axis=1)
        nearest = np.sort(squared[:, : k + 1], axis=1)
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
    """An isolation forest (Liu et al. 2008) grown on X, as flat arrays: all trees' nodes concatenated,
    children indices global, every child numbered after its parent (left, right, feature, threshold,
    n_samples, roots, max_samples; all int64 but threshold, float64).

    Ours, in NumPy, rather than scikit-learn's ``IsolationForest``: importing scikit-learn is slow, and
    ``train`` needs nothing else of it (the mixture's k-means is deepuad's too). It follows
    scikit-learn 1.9's algorithm with its defaults in distribution (its Cython random stream cannot be
    reproduced; ours is ``np.random.default_rng(random_state)``, so a seed gives the same forest on
    every run):

    * 100 trees, each grown on ``min(256, len(X))`` rows drawn without replacement;
    * the rows compared in float32, a row goes left when ``x[feature] <= threshold``;
    * a node is a leaf when it holds fewer than 2 rows, lies at depth ceil(log2(max_samples)), or
      every feature is constant on its rows (max <= min + 1e-7, scikit-learn's FEATURE_THRESHOLD);
    * otherwise its feature is drawn uniformly among the features *not* constant on its rows, and its
      threshold uniformly in [min, max) of that feature there (min where the draw rounds up to max),
      so both children hold rows.

    The trees grow level by level, all nodes of all trees at once, so Python loops over the 9 levels,
    not over the ~10^4 nodes."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    # NaN or inf would make thresholds check_forest refuses; forest_scores has no branch for missing values
    if X.ndim != 2 or len(X) == 0 or not np.isfinite(X).all():
        raise ValueError("fit_forest needs a 2-D array of finite float32 values with at least one row")
    n_rows, n_features = X.shape
    max_samples = min(FOREST_SAMPLES, n_rows)
    max_depth = int(np.ceil(np.log2(max(max_samples, 2))))
    rng = np.random.default_rng(random_state)
    flat = X.ravel()
    # a feature constant over all of X is constant at every node: only the others are ever drawn
    candidates = np.flatnonzero(X.max(axis=0).astype(np.float64) > X.min(axis=0).astype(np.float64) + FEATURE_THRESHOLD)
    copy_of = _copy_ids(X)

    # the nodes of one level, all trees together: node k holds rows[starts[k] : starts[k] + counts[k]]
    rows = np.concatenate([rng.choice(n_rows, size=max_samples, replace=False) for _ in range(FOREST_TREES)])
    counts = np.full(FOREST_TREES, max_samples, dtype=np.int64)
    levels: list[tuple[np.ndarray, ...]] = []  # per level: left, right, feature, threshold, n_samples
    first = 0  # the global index of the level's first node (breadth first: children after parents)
    for depth in range(max_depth + 1):
        n_nodes = len(counts)
        feature = np.full(n_nodes, -1, dtype=np.int64)  # -1: a leaf
        lower = np.zeros(n_nodes, dtype=np.float64)
        upper = np.zeros(n_nodes, dtype=np.float64)
        splittable = np.zeros(0, dtype=np.int64)
        if depth < max_depth and len(candidates):
            # a node of copies of one row is constant in every feature: a leaf, found without ranging any
            starts, ids = np.cumsum(counts) - counts, copy_of[rows]
            copies = np.minimum.reduceat(ids, starts) == np.maximum.reduceat(ids, starts)
            splittable = np.flatnonzero((counts >= 2) & ~copies)
        if len(splittable):
            owned = np.zeros(n_nodes, dtype=bool)
            owned[splittable] = True
            owned_rows = rows[np.repeat(owned, counts)]
            f, lo, hi = _choose_splits(flat, n_features, owned_rows, counts[splittable], candidates, rng)
            feature[splittable], lower[splittable], upper[splittable] = f, lo, hi
        split = feature >= 0
        # the threshold: uniform in [min, max), min where rounding gives max (as scikit-learn does)
        threshold = lower + (upper - lower) * rng.random(n_nodes)
        threshold = np.where(threshold >= upper, lower, threshold)
        n_split = int(split.sum())
        split_rank = np.cumsum(split) - 1  # each split node's place among this level's split nodes
        child = first + n_nodes + 2 * split_rank  # the left child's index; the right one is next
        levels.append((np.where(split, child, -1), np.where(split, child + 1, -1), np.maximum(feature, 0),
                       np.where(split, threshold, -2.0), counts))
        if not n_split:
            break
        # the next level: each split node's rows, left child's first, keeping the nodes' order
        node_of_row = np.repeat(np.arange(n_nodes), counts)
        keep = split[node_of_row]
        rows, node_of_row = rows[keep], node_of_row[keep]
        goes_right = flat[rows * n_features + feature[node_of_row]] > threshold[node_of_row]
        slot = 2 * split_rank[node_of_row] + goes_right  # the row's child, 0 .. 2 * n_split - 1
        rows = rows[np.argsort(slot, kind="stable")]
        counts = np.bincount(slot, minlength=2 * n_split).astype(np.int64)
        first += n_nodes

    left, right, feature, threshold, n_samples = (np.concatenate(column) for column in zip(*levels))
    return {"left": left.astype(np.int64), "right": right.astype(np.int64), "feature": feature.astype(np.int64),
            "threshold": threshold.astype(np.float64), "n_samples": n_samples.astype(np.int64),
            "roots": np.arange(FOREST_TREES, dtype=np.int64),  # level 0: tree t's root is node t
            "max_samples": np.asarray([max_samples], dtype=np.int64)}


def _copy_ids(X: np.ndarray) -> np.ndarray:
    """For each row of X, the first row it is an exact copy of (itself if none): nodes holding only
    copies are common (most rows of KDDCUP are copies of a few connections) and ranging their every
    feature to prove them constant is the grower's dearest step. Rows are grouped by a projection on
    fixed weights (cheap; copies project alike) and each kept in its group only if it equals the
    group's first row, so equal ids always mean copies; a rare miss only costs that step."""
    projection = X @ np.random.default_rng(0).random(X.shape[1]).astype(np.float32)
    _, first, inverse = np.unique(projection, return_index=True, return_inverse=True)
    ids = first[inverse.ravel()]
    maybe = np.flatnonzero(ids != np.arange(len(X)))
    differs = ~(X[maybe] == X[ids[maybe]]).all(axis=1)
    ids[maybe[differs]] = maybe[differs]
    return ids


def _node_ranges(flat: np.ndarray, n_features: int, rows: np.ndarray, counts: np.ndarray,
                 features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) over each node's rows of each of its features (float64 of the float32 values): nodes
    hold consecutive runs of ``rows`` (``counts[k]`` rows each, all >= 1); ``features`` is (nodes, k)."""
    node_of_row = np.repeat(np.arange(len(counts)), counts)
    # gathered as (k, rows): reduceat along the last axis is faster than along the first
    values = flat[features.T[:, node_of_row] + rows * n_features]
    starts = np.cumsum(counts) - counts
    lower = np.minimum.reduceat(values, starts, axis=1).T.astype(np.float64)
    upper = np.maximum.reduceat(values, starts, axis=1).T.astype(np.float64)
    return lower, upper


def _choose_splits(flat: np.ndarray, n_features: int, rows: np.ndarray, counts: np.ndarray, candidates: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each node (a run of ``counts[k]`` >= 2 of ``rows``): a feature drawn uniformly among the
    ``candidates`` that are not constant on its rows, with that feature's min and max there; feature
    -1 where every candidate is constant (the node is a leaf).

    Ranging every feature at every node would read rows x features values per level (40 M on
    25,600 rows x 1,555 columns); instead each node draws features at random and keeps the first
    that varies on its rows. Draws are independent and uniform, so the first one that varies is
    uniform over those that vary, as scikit-learn's is (it draws without replacement until one
    varies). A node that finds none draws twice as many next round, until a round would read a
    quarter as many values as ranging every candidate; the few nodes left then (rows that differ in
    a handful of features, or near-copies) range every candidate, in column blocks that bound memory,
    and pick uniformly among those that vary. Whatever the rounds drew, the pick stays uniform."""
    n_nodes = len(counts)
    feature = np.full(n_nodes, -1, dtype=np.int64)
    lower, upper = np.zeros(n_nodes), np.zeros(n_nodes)
    pending = np.arange(n_nodes)  # the nodes still looking, and their rows (runs in the same order)
    pending_rows = rows
    draws = 1
    while draws < len(candidates) // 4 and len(pending):  # while that reads fewer values than all candidates
        drawn = candidates[rng.integers(len(candidates), size=(len(pending), draws))]
        lo, hi = _node_ranges(flat, n_features, pending_rows, counts[pending], drawn)
        varies = hi > lo + FEATURE_THRESHOLD
        pick = varies.argmax(axis=1)  # the first draw that varies (0 where none does)
        found = varies[np.arange(len(pending)), pick]
        feature[pending[found]] = drawn[found, pick[found]]
        lower[pending[found]], upper[pending[found]] = lo[found, pick[found]], hi[found, pick[found]]
        pending_rows = pending_rows[np.repeat(~found, counts[pending])]
        pending = pending[~found]
        draws *= 2
    if not len(pending):
        return feature, lower, upper
    # every candidate's range on the nodes left, a block of columns at a time
    pending_counts = counts[pending]
    varies = np.zeros((len(pending), len(candidates)), dtype=bool)
    block = max(1, _RANGE_BLOCK // len(pending_rows))
    for at in range(0, len(candidates), block):
        columns = np.broadcast_to(candidates[at : at + block], (len(pending), len(candidates[at : at + block])))
        lo, hi = _node_ranges(flat, n_features, pending_rows, pending_counts, columns)
        varies[:, at : at + block] = hi > lo + FEATURE_THRESHOLD
    n_varying = varies.sum(axis=1)
    found = n_varying > 0  # the others are leaves: feature -1
    # the k-th candidate that varies, k uniform in [0, n_varying): varying columns listed node by node
    k = rng.integers(np.maximum(n_varying, 1))
    pick = np.nonzero(varies)[1][(np.cumsum(n_varying) - n_varying + k)[found]]
    lo, hi = _node_ranges(flat, n_features, pending_rows[np.repeat(found, pending_counts)], pending_counts[found],
                          candidates[pick][:, None])
    feature[pending[found]] = candidates[pick]
    lower[pending[found]], upper[pending[found]] = lo[:, 0], hi[:, 0]
    return feature, lower, upper


FOREST_ARRAYS = ("left", "right", "feature", "threshold", "n_samples", "roots", "max_samples")


def forest_depth_limit(max_samples: int) -> int:
    """The deepest a tree grown on ``max_samples`` rows may be: ceil(log2(max_samples)), where both
    ``fit_forest`` and scikit-learn's IsolationForest (the forests of older models) stop growing."""
    return int(np.ceil(np.log2(max(int(max_samples), 2))))


def check_forest(forest: dict[str, np.ndarray], n_features: int) -> None:
    """ValueError unless ``forest`` is a well-formed set of trees over ``n_features`` columns: a
    forest read from a file someone sent must not index out of range, walk in a loop, or cost
    more than the forest it declares (at most 2 x max_samples - 1 nodes a tree, no tree deeper
    than ``forest_depth_limit``: ``forest_scores`` takes one step per level)."""
    missing = [name for name in FOREST_ARRAYS if name not in forest]
    if missing:
        raise ValueError(f"forest lacks {', '.join(missing)}")
    arrays = {name: np.asarray(forest[name]) for name in FOREST_ARRAYS}
    for name, values in arrays.items():
        if values.ndim != 1:
            raise ValueError(f"forest array {name} has {values.ndim} dimensions, expected 1")
        if values.dtype.kind not in ("f" if name == "threshold" else "iu"):
            raise ValueError(f"forest array {name} has dtype {values.dtype}, expected {'floats' if name == 'threshold' else 'integers'}")
    nodes = len(arrays["left"])
    if any(len(arrays[name]) != nodes for name in FOREST_ARRAYS[:5]):
        raise ValueError("forest arrays differ in shape")
    if arrays["max_samples"].shape != (1,) or int(arrays["max_samples"][0]) < 1:
        raise ValueError("forest max_samples is not one positive count")
    max_samples = int(arrays["max_samples"][0])
    left, right, feature, roots = (arrays[name].astype(np.int64) for name in ("left", "right", "feature", "roots"))
    if len(roots) == 0 or nodes > len(roots) * (2 * max_samples - 1):
        raise ValueError(f"forest has {nodes:,} nodes in {len(roots)} trees grown on {max_samples} rows each "
                         f"(at most {len(roots) * (2 * max_samples - 1):,})")
    inner = left >= 0
    index = np.arange(nodes)
    # children come after their parent (fit_forest numbers nodes level by level; a scikit-learn forest,
    # which a model file may hold, depth first): every walk ends at a leaf
    if not (np.array_equal(inner, right >= 0) and (left[inner] > index[inner]).all() and (right[inner] > index[inner]).all()
            and (left < nodes).all() and (right < nodes).all() and (left >= -1).all() and (right >= -1).all()):
        raise ValueError("forest children out of range")
    # trees, not graphs: every node has at most one parent and no root has one, so a walk is a path
    # and the depth table of forest_scores is one pass over the nodes
    children = np.concatenate([left[inner], right[inner]])
    if len(np.unique(children)) != len(children) or np.isin(roots, children).any():
        raise ValueError("forest nodes share a parent or a root has one")
    if ((feature < 0) | (feature >= n_features)).any() or ((roots < 0) | (roots >= nodes)).any():
        raise ValueError("forest features or roots out of range")
    if (arrays["n_samples"] < 1).any():
        raise ValueError("forest sample counts are not positive")
    if not np.isfinite(arrays["threshold"].astype(np.float64)).all():
        raise ValueError("forest thresholds are not finite")
    limit = forest_depth_limit(max_samples)
    level = roots
    for _ in range(limit):  # breadth first, a bounded number of levels: a chain is found in `limit` steps
        level = np.concatenate([left[level[inner[level]]], right[level[inner[level]]]])
    if inner[level].any():
        raise ValueError(f"forest trees are deeper than {limit} levels, the most {max_samples} rows grow")


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


def forest_scores(forest: dict[str, np.ndarray], X: np.ndarray, chunk: int = 256) -> np.ndarray:
    """2^(-E[h(x)] / c(max_samples)) in (0, 1], higher = easier to isolate (scikit-learn's
    ``-score_samples``): every row walks all trees at once, one level per step. Flat ``np.take``
    lookups over chunks of 256 rows, whose node tables stay in cache, are faster than 2-D
    indexing or larger chunks and give the same scores to the bit."""
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
def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """(median, spread) of ``values``. The spread is the interquartile range of the values and of
    their distinct values, whichever is larger: exact duplicates (most kept rows of KDDCUP are
    copies of a few connections, and copies reconstruct with the same error) shrink the IQR of
    all values towards 0, and a part scaled by that gives other rows z-scores of 10^5 to 10^6,
    so it alone decides the combined score. Counting each value once cannot shrink the spread, only
    undo that collapse. Where both are 0: the standard deviation, then 1."""
    values = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    distinct_q1, distinct_q3 = np.percentile(np.unique(values), [25, 75])
    for scale in (max(q3 - q1, distinct_q3 - distinct_q1), float(np.std(values))):
        if scale > 1e-12:
            return float(median), float(scale)
    return float(median), 1.0


def estimate_contamination(scores: np.ndarray, cutoff: float = 3.0) -> float:
    """The share of rows whose score lies more than ``cutoff`` robust standard deviations
    (1.4826 MAD) above the median: the flag rule that sets the default threshold. A rule, not an
    estimate of the anomaly share. Kept in [1 / N, 0.5]."""
    scores = np.asarray(scores, dtype=np.float64)
    median = float(np.median(scores))
    spread = 1.4826 * float(np.median(np.abs(scores - median)))
    if spread <= 1e-12:
        spread = float(np.std(scores)) or 1.0
    share = float(np.mean(scores > median + cutoff * spread))
    return float(min(MAX_CONTAMINATION, max(1.0 / len(scores), share)))  # a valid contamination
