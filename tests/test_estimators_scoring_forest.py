"""``scoring.fit_forest``, our NumPy isolation-forest grower: well-formed trees, splits that follow
scikit-learn's IsolationForest rules node by node, and scores distributed like scikit-learn's (the
same algorithm, another random stream: equal in distribution, never bit for bit)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from deepuad.estimators import scoring

REPO = Path(__file__).resolve().parent.parent


def node_depths(forest):
    """Each node's depth and the index of its tree (walked from the roots)."""
    left, right = forest["left"], forest["right"]
    depth, tree = np.zeros(len(left), dtype=np.int64), np.zeros(len(left), dtype=np.int64)
    tree[forest["roots"]] = np.arange(len(forest["roots"]))
    for node in range(len(left)):  # children come after their parent: one pass sees every parent first
        if left[node] >= 0:
            depth[[left[node], right[node]]] = depth[node] + 1
            tree[[left[node], right[node]]] = tree[node]
    return depth, tree


def check_shape(forest, n_rows, n_features):
    """What every grown forest must be: check_forest's well-formed trees, 100 of them, each holding
    min(256, n_rows) rows that its leaves partition, no deeper than ceil(log2(max_samples))."""
    scoring.check_forest(forest, n_features)
    max_samples = min(256, n_rows)
    assert forest["max_samples"].tolist() == [max_samples] and len(forest["roots"]) == 100
    assert {name: forest[name].dtype for name in scoring.FOREST_ARRAYS} == {
        name: np.float64 if name == "threshold" else np.int64 for name in scoring.FOREST_ARRAYS}
    left, right, n_samples = forest["left"], forest["right"], forest["n_samples"]
    depth, tree = node_depths(forest)
    leaf = left < 0
    assert (depth <= int(np.ceil(np.log2(max(max_samples, 2))))).all()
    assert (n_samples[forest["roots"]] == max_samples).all()
    np.testing.assert_array_equal(np.bincount(tree[leaf], weights=n_samples[leaf]), np.full(100, max_samples))
    np.testing.assert_array_equal(n_samples[left[~leaf]] + n_samples[right[~leaf]], n_samples[~leaf])
    assert (forest["feature"][leaf] == 0).all() and (right[leaf] == -1).all()


def check_splits(forest, X):
    """For X of at most 256 rows, where every tree holds every row: send the rows down each tree as
    forest_scores does (float32, left when x <= threshold) and check each node against the rules. An
    inner node holds n_samples rows, splits on a feature that varies on them (max > min + 1e-7) at a
    threshold in [min, max); a leaf holds one row, or lies at the depth limit, or all its features
    are constant. Returns, for each inner node, where its feature stands among those that vary on its
    rows and how many vary: (position, count) pairs."""
    X = np.asarray(X, dtype=np.float32)
    assert len(X) <= 256
    max_depth = int(np.ceil(np.log2(max(len(X), 2))))
    left, right, feature, threshold = forest["left"], forest["right"], forest["feature"], forest["threshold"]
    depth, _ = node_depths(forest)
    held = {int(root): np.arange(len(X)) for root in forest["roots"]}
    positions = []
    for node in range(len(left)):
        rows = held.pop(node)
        assert len(rows) == forest["n_samples"][node]
        values = X[rows].astype(np.float64)
        varies = values.max(axis=0) > values.min(axis=0) + 1e-7
        if left[node] < 0:
            assert len(rows) < 2 or depth[node] == max_depth or not varies.any()
            continue
        column = values[:, feature[node]]
        assert varies[feature[node]] and column.min() <= threshold[node] < column.max()
        positions.append((int(varies[: feature[node]].sum()), int(varies.sum())))
        goes_left = X[rows, feature[node]] <= threshold[node]
        held[int(left[node])], held[int(right[node])] = rows[goes_left], rows[~goes_left]
    assert not held
    return np.array(positions)


def test_forest_is_well_formed_and_splits_by_the_rules():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(1000, 5))
    check_shape(scoring.fit_forest(big, random_state=0), 1000, 5)
    # at most 256 rows: every tree holds them all, so every node can be checked against its rows.
    # Mixed columns: Gaussian, a few levels (ties), sparse binary
    small = np.column_stack([rng.normal(size=200), rng.integers(0, 3, 200), rng.random(200) < 0.05])
    for seed in range(3):
        forest = scoring.fit_forest(small, random_state=seed)
        check_shape(forest, 200, 3)
        check_splits(forest, small)


@pytest.mark.parametrize("columns", [3, 60])
def test_split_features_are_uniform_over_those_that_vary(columns):
    """Where a node's feature stands among the k that vary on its rows is uniform on 0 .. k-1. Sparse
    binary columns (few vary at a deep node) and two others; 3 columns take the every-feature path
    of _choose_splits at once, 60 the random draws first."""
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=200), rng.integers(0, 3, 200), rng.random((200, columns - 2)) < 0.1])
    positions = np.vstack([check_splits(scoring.fit_forest(X, random_state=seed), X) for seed in range(3)])
    position, count = positions.T
    share = (position + 0.5) / count  # mean 1/2, variance (1 - 1/k^2) / 12 under uniform choice
    error = np.sqrt(((1 - 1 / count**2) / 12).sum()) / len(share)
    assert abs(share.mean() - 0.5) < 4 * error, (share.mean(), error)
    assert (count > 1).sum() > 3000  # thousands of nodes had a choice to make


def test_constant_features_are_never_split_on():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    X[:, 0] = 3.0  # constant
    X[:, 1] = np.where(np.arange(200) == 7, 0.5 + 5e-8, 0.5)  # within scikit-learn's 1e-7 of constant
    X[:, 2] = 0.0
    X[7, 2] = 1.0  # constant but in one row: split on only at nodes that hold row 7 and another
    forest = scoring.fit_forest(X, random_state=0)
    check_splits(forest, X)
    inner = forest["left"] >= 0
    used = np.bincount(forest["feature"][inner], minlength=4)
    assert used[0] == used[1] == 0 and used[2] > 0 and used[3] > 0
    # more rows than a tree holds: the same, where a node's rows are a sample
    big = np.vstack([X, rng.normal(size=(800, 4)) * [0, 0, 0, 1] + [3.0, 0.5, 0.0, 0.0]])
    forest = scoring.fit_forest(big, random_state=0)
    check_shape(forest, 1000, 4)
    assert set(forest["feature"][forest["left"] >= 0]) <= {2, 3}


def test_constant_data_grows_single_leaf_trees_that_score_every_row_alike():
    X = np.tile([1.0, -2.0, 0.0], (300, 1))
    forest = scoring.fit_forest(X, random_state=0)
    check_shape(forest, 300, 3)
    assert len(forest["left"]) == 100 and (forest["left"] == -1).all() and (forest["n_samples"] == 256).all()
    scores = scoring.forest_scores(forest, np.vstack([X[:5], [[1.0, -2.0, 5.0]]]))
    assert np.ptp(scores) == 0


def test_copies_of_a_row_end_in_one_leaf():
    # two distinct rows, 100 copies each: every root splits them apart, both children are leaves.
    # The second column differs by far less than the first's float32 step, so the rows project
    # alike in _copy_ids and only its check that rows are equal tells them apart
    X = np.repeat([[1e30, 0.0], [1e30, 1.0]], 100, axis=0)
    forest = scoring.fit_forest(X, random_state=0)
    check_splits(forest, X)
    assert len(forest["left"]) == 300 and (forest["feature"][forest["roots"]] == 1).all()
    ids = scoring._copy_ids(np.asarray(X, dtype=np.float32))
    assert (ids[:100] == 0).all() and (ids[100:] >= 100).all()  # equal ids: copies; copies missed: fine


def test_one_row_and_bad_input():
    forest = scoring.fit_forest(np.array([[1.0, 2.0]]), random_state=0)
    check_shape(forest, 1, 2)
    assert (forest["left"] == -1).all()
    for bad in (np.zeros((0, 3)), np.zeros(5), np.array([[0.0, np.nan], [1.0, 2.0]]), np.array([[np.inf], [0.0]])):
        with pytest.raises(ValueError):
            scoring.fit_forest(bad, random_state=0)


def test_a_seed_gives_one_forest():
    X = np.random.default_rng(2).normal(size=(500, 6))
    first, again, other = (scoring.fit_forest(X, random_state=seed) for seed in (4, 4, 5))
    assert all(np.array_equal(first[name], again[name]) for name in scoring.FOREST_ARRAYS)
    assert not np.array_equal(first["threshold"], other["threshold"])
    assert not np.array_equal(scoring.forest_scores(first, X), scoring.forest_scores(other, X))


# ----------------------------------------------------------------------------- against scikit-learn
def gaussian_set():
    """600 N(0, 1) rows and 30 anomalies from N(0, 2^2), 8 columns (AUROC ~0.96: not saturated)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(600, 8)), 2.0 * rng.normal(size=(30, 8))])
    return X, np.r_[np.zeros(600), np.ones(30)]


def binary_set():
    """Sparse binary rows (5 % ones) and 25 anomalies with 20 % ones; 8 of the 48 columns constant."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.random((500, 40)) < 0.05, rng.random((25, 40)) < 0.2]).astype(np.float64)
    return np.hstack([np.ones((525, 8)), X]), np.r_[np.zeros(500), np.ones(25)]


def compare_with_scikit_learn(X, y):
    """(our AUROC, scikit-learn's AUROC, Spearman of per-row scores, our mean score, theirs), averaged over
    seeds 0-2 (ours and scikit-learn's default IsolationForest, both on float32 X)."""
    X = np.asarray(X, dtype=np.float32)
    ours = [scoring.forest_scores(scoring.fit_forest(X, random_state=seed), X) for seed in range(3)]
    theirs = [-IsolationForest(random_state=seed).fit(X).score_samples(X) for seed in range(3)]
    return (np.mean([roc_auc_score(y, s) for s in ours]), np.mean([roc_auc_score(y, s) for s in theirs]),
            np.mean([spearmanr(a, b)[0] for a, b in zip(ours, theirs)]), np.mean(ours), np.mean(theirs))


def check_like_scikit_learn(X, y):
    our_auroc, their_auroc, rho, our_mean, their_mean = compare_with_scikit_learn(X, y)
    assert abs(our_auroc - their_auroc) < 0.02, (our_auroc, their_auroc)
    assert rho > 0.9, rho  # two scikit-learn seeds agree about as well (0.91-0.96 on these sets)
    assert abs(our_mean - their_mean) < 0.01, (our_mean, their_mean)  # the same depths on average


@pytest.mark.parametrize("make", [gaussian_set, binary_set])
def test_scores_like_scikit_learn(make):
    check_like_scikit_learn(*make())


def test_scores_like_scikit_learn_on_cardio(shared_data):
    path = shared_data / "odds_adbench" / "6_cardio.npz"
    assert path.is_file(), f"{path} is missing from the shared data folder"
    data = np.load(path)
    X, y = data["X"].astype(np.float64), data["y"]
    low, high = X.min(axis=0), X.max(axis=0)
    check_like_scikit_learn((X - low) / np.where(high > low, high - low, 1.0), y)  # min-max, as deepuad scales


def sklearn_forest_arrays(forest):
    """A fitted scikit-learn IsolationForest as fit_forest's arrays (how fit_forest exported it before
    it grew its own trees)."""
    parts = {"left": [], "right": [], "feature": [], "threshold": [], "n_samples": []}
    offset = 0
    for tree, features in zip(forest.estimators_, forest.estimators_features_):
        t = tree.tree_
        leaf = t.children_left == -1
        parts["left"].append(np.where(leaf, -1, t.children_left + offset))
        parts["right"].append(np.where(leaf, -1, t.children_right + offset))
        parts["feature"].append(np.where(leaf, 0, np.asarray(features)[np.maximum(t.feature, 0)]))
        parts["threshold"].append(t.threshold)
        parts["n_samples"].append(t.n_node_samples)
        offset += t.node_count
    arrays = {name: np.concatenate(values).astype(np.float64 if name == "threshold" else np.int64)
              for name, values in parts.items()}
    arrays["roots"] = np.cumsum([0] + [e.tree_.node_count for e in forest.estimators_[:-1]]).astype(np.int64)
    arrays["max_samples"] = np.asarray([forest.max_samples_], dtype=np.int64)
    return arrays


def test_forest_scores_walks_scikit_learn_trees_to_its_scores():
    """forest_scores is scikit-learn's score_samples: on scikit-learn's own trees, to 1e-12."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(600, 5)).astype(np.float32), 2 * rng.normal(size=(200, 5)).astype(np.float32)
    fitted = IsolationForest(n_estimators=100, max_samples=256, random_state=3).fit(X)
    forest = sklearn_forest_arrays(fitted)
    scoring.check_forest(forest, 5)
    np.testing.assert_allclose(scoring.forest_scores(forest, Y, chunk=64), -fitted.score_samples(Y), rtol=0, atol=1e-12)


def test_growing_a_forest_imports_no_scikit_learn():
    code = ("import sys, numpy as np; from deepuad.estimators import scoring; "
            "X = np.random.default_rng(0).normal(size=(300, 4)); "
            "scoring.forest_scores(scoring.fit_forest(X, random_state=0), X); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_forest_compares_like_scikit_learn_at_the_thresholds():
    # a row exactly at a threshold goes left (x <= t), as in scikit-learn's trees
    stump = {"left": np.array([1, -1, -1]), "right": np.array([2, -1, -1]), "feature": np.array([0, 0, 0]),
             "threshold": np.array([0.5, 0.0, 0.0]), "n_samples": np.array([4, 1, 3]), "roots": np.array([0]),
             "max_samples": np.array([4])}
    at, above = scoring.forest_scores(stump, np.array([[0.5], [0.5000001]]))
    assert at > above  # left: a one-row leaf, isolated at depth 1; right: three rows deeper
    # float64 rows are compared as float32, like scikit-learn does: a value one float64 step above
    # a threshold may round to float32 at or below it
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    fitted = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(X)
    forest = sklearn_forest_arrays(fitted)  # scikit-learn's own trees, so that its scores are the reference
    roots = forest["roots"]
    Y = np.tile(np.median(X, axis=0).astype(np.float64), (len(roots), 1))
    Y[np.arange(len(roots)), forest["feature"][roots]] = np.nextafter(forest["threshold"][roots], np.inf)
    reference = -fitted.score_samples(Y)
    np.testing.assert_allclose(scoring.forest_scores(forest, Y), reference, rtol=0, atol=1e-12)
