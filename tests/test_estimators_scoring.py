"""The score: its parts against independent references, and what the combined score buys."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepuad.estimators import scoring
from deepuad.estimators.autoencoder import cosine_error
from deepuad.estimators.cleaning import tails_trim
from deepuad.estimators.detector import DeepUAD, auto_batch_size, auto_layers
from deepuad.estimators.params import DEFAULTS


def test_knn_distances_skip_the_row_itself_once():
    reference = np.array([[0.0], [1.0], [3.0], [6.0]])
    # 1.0 is a reference row: its own copy is skipped, its 2 nearest others are 0.0 and 3.0
    # 10.0 is not: its 2 nearest are 6.0 and 3.0
    got = scoring.knn_distances(reference, np.array([[1.0], [10.0]]), k=2)
    np.testing.assert_allclose(got, [(1.0 + 2.0) / 2, (4.0 + 7.0) / 2])


def test_one_row_training_sets_score_finite():
    one = np.array([[0.0, 1.0]])
    X = np.array([[0.0, 1.0], [3.0, 5.0]])
    np.testing.assert_allclose(scoring.knn_distances(one, X, k=5), [0.0, 5.0])
    assert np.isfinite(scoring.forest_scores(scoring.fit_forest(one, random_state=0), X)).all()


def test_robust_scale_is_the_iqr_of_the_values_or_of_their_distinct_values_whichever_is_larger():
    assert scoring.robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == (3.0, 2.0)
    # duplicates at the median collapse the IQR of all values to 0; the distinct values' IQR remains
    spread = np.linspace(0.0, 2.0, 40)
    center, scale = scoring.robust_scale(np.concatenate([np.ones(60), spread]))
    distinct = np.unique(np.concatenate([[1.0], spread]))
    assert center == 1.0 and scale == pytest.approx(np.percentile(distinct, 75) - np.percentile(distinct, 25))
    center, scale = scoring.robust_scale(np.array([0.0] * 9 + [10.0]))
    assert center == 0.0 and scale == pytest.approx(5.0)  # distinct values 0 and 10
    # counting each value once never shrinks the spread: IQR 10 here, 5 over the distinct values
    assert scoring.robust_scale(np.array([0.0, 0.0, 0.0, 5.0, 10.0, 10.0, 10.0])) == (5.0, 10.0)


def test_robust_scale_falls_back_to_the_standard_deviation_then_one():
    # distinct values packed within 1e-12 of each other, and one far away: both IQRs are ~0
    values = np.concatenate([np.arange(99) * 1e-14, [1.0]])
    assert scoring.robust_scale(values)[1] == pytest.approx(np.std(values))
    assert scoring.robust_scale(np.zeros(5)) == (0.0, 1.0)


def test_contamination_estimate_finds_a_planted_share():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(size=950), rng.normal(loc=12, size=50)])
    assert scoring.estimate_contamination(scores) == pytest.approx(0.05, abs=0.01)
    assert scoring.estimate_contamination(np.zeros(10)) == pytest.approx(0.1)  # at least 1/N, never 0


def test_auto_sizes_follow_the_data():
    assert auto_layers(3) == (2, 1) and auto_layers(118) == (59, 30) and auto_layers(1555) == (64, 32)
    assert auto_batch_size(100) == 32 and auto_batch_size(2000) == 125 and auto_batch_size(10**6) == 1024


def magnitude_anomalies(seed=0):
    """Normal rows and anomalies that are the same rows scaled up 4x: the same direction, so a
    cosine error cannot tell them apart; a magnitude-aware score must."""
    rng = np.random.default_rng(seed)
    normal = rng.uniform(0.05, 0.25, size=(400, 6)) + rng.normal(scale=0.01, size=(400, 6))
    anomalies = 4 * normal[:20]
    X = np.vstack([normal, anomalies]).astype(np.float32)
    return X, np.r_[np.zeros(400), np.ones(20)]


EXPLICIT = dict(p0=20, p=15, r=5, epochs=20, batch_size=64, layers=(4, 2), tol=0.05)


def test_combined_score_sees_magnitude_that_the_cosine_error_misses():
    X, y = magnitude_anomalies()
    cosine = DeepUAD(score="cosine", seed=0, **EXPLICIT).fit(X)
    combined = DeepUAD(score="combined", seed=0, **EXPLICIT).fit(X)
    assert roc_auc_score(y, cosine.decision_scores_) < 0.75
    assert roc_auc_score(y, combined.decision_scores_) > 0.95
    # the same network was trained (same selections): only the score differs
    np.testing.assert_array_equal(cosine.selected_, combined.selected_)


def test_cosine_score_is_the_papers_h():
    X, _ = magnitude_anomalies()
    det = DeepUAD(score="cosine", seed=0, **EXPLICIT).fit(X)
    with torch.no_grad():
        h = cosine_error(torch.from_numpy(X), det.model_(torch.from_numpy(X))).numpy()
    np.testing.assert_allclose(det.decision_function(X), h, rtol=1e-6)


def test_combined_score_is_the_weighted_mean_robust_z_of_its_parts():
    X, _ = magnitude_anomalies()
    det = DeepUAD(seed=0, score="combined", **EXPLICIT).fit(X)
    assert det.score_parts_ == ("l2", "iforest")
    np.testing.assert_array_equal(det.score_weights_, [1.0, 2.0])  # the forest counts twice
    l2, forest = det.score_parts(X).values()  # l2: log of the squared error
    (l2_center, forest_center), (l2_scale, forest_scale) = det.score_center_, det.score_scale_
    expected = ((l2 - l2_center) / l2_scale + 2 * (forest - forest_center) / forest_scale) / 3
    np.testing.assert_allclose(det.decision_scores_, expected, rtol=1e-5, atol=1e-6)
    # each part is calibrated on the rows it was fitted on (l2: the reference trimmed by its tails, the
    # forest: the kept rows): their median z-score is 0, their IQR 1
    reference_l2 = det.score_parts(det.reference_[tails_trim(det.reference_, det.reference_trim)])["l2"]
    kept_forest = det.score_parts(X[det.selected_])["iforest"]
    for part, center, scale in ((reference_l2, l2_center, l2_scale), (kept_forest, forest_center, forest_scale)):
        z = (part - center) / scale
        assert abs(np.median(z)) < 1e-6 and np.subtract(*np.percentile(z, [75, 25])) == pytest.approx(1.0)


def test_threshold_flags_by_the_rule_unless_told():
    X, _ = magnitude_anomalies()
    default = DeepUAD(seed=0, **EXPLICIT).fit(X)  # the default score: the rule counts on the score itself
    assert default.contamination_ == scoring.estimate_contamination(default.decision_scores_.astype(np.float32))
    assert default.labels_.mean() == pytest.approx(default.contamination_, abs=2 / len(X))
    det = DeepUAD(seed=0, score="combined", **EXPLICIT).fit(X)
    assert 0 < det.contamination_ <= 0.5
    # the combined score: counted on the plain mean of the parts' z-scores, ranked by their weighted mean
    parts = det.score_parts(X).values()
    plain = np.mean([(p - c) / s for p, c, s in zip(parts, det.score_center_, det.score_scale_)], axis=0).astype(np.float32)
    assert det.contamination_ == scoring.estimate_contamination(plain)
    assert det.labels_.mean() == pytest.approx(det.contamination_, abs=2 / len(X))
    told = DeepUAD(seed=0, contamination=0.2, **EXPLICIT).fit(X)
    assert told.labels_.mean() == pytest.approx(0.2, abs=2 / len(X))


def test_scorer_survives_get_state_and_restore():
    X, _ = magnitude_anomalies()
    det = DeepUAD(seed=0, **EXPLICIT).fit(X)
    arrays, meta = det.get_state()
    assert {"scorer/reference", "scorer/score_center", "scorer/score_scale", "scorer/score_weights", "scorer/tails/sorted"} <= set(arrays)
    fresh = DeepUAD(seed=0, **EXPLICIT)
    fresh.set_state((arrays, meta), X.shape[1], len(X), with_optimizer=False)
    np.testing.assert_array_equal(fresh.decision_function(X), det.decision_function(X))
    assert fresh.contamination_ == det.contamination_


def test_a_model_without_part_weights_scores_with_the_plain_mean_and_bad_weights_are_refused():
    """Models written before the parts had weights keep their scores (the version-1 reader gives
    each part weight 1); a state without weights, or with crafted ones, fails on load."""
    from deepuad.artifacts.model import _v1_state

    X, _ = magnitude_anomalies()
    det = DeepUAD(seed=0, score="combined", **EXPLICIT).fit(X)
    arrays, meta = det.get_state()
    older = {k: v for k, v in arrays.items() if k != "scorer/score_weights"}
    with pytest.raises(KeyError):
        DeepUAD(seed=0, score="combined", **EXPLICIT).set_state((older, meta), X.shape[1], len(X), with_optimizer=False)
    _v1_state(older, meta, {"complete": True, "contamination_estimate": meta["contamination_estimate"]})
    fresh = DeepUAD(seed=0, score="combined", **EXPLICIT)
    fresh.set_state((older, meta), X.shape[1], len(X), with_optimizer=False)
    parts = det.score_parts(X).values()
    plain = np.mean([(p - c) / s for p, c, s in zip(parts, det.score_center_, det.score_scale_)], axis=0)
    np.testing.assert_allclose(fresh.decision_function(X), plain, rtol=1e-5, atol=1e-6)
    assert not np.allclose(det.decision_function(X), plain, atol=1e-3)  # the weights do change the score
    for bad in ([1.0], [1.0, 0.0], [1.0, np.nan], [1.0, -2.0]):
        with pytest.raises(ValueError, match="scorer calibration"):
            DeepUAD(seed=0, score="combined", **EXPLICIT).set_state(({**arrays, "scorer/score_weights": np.array(bad)}, meta), X.shape[1], len(X),
                                                  with_optimizer=False)


def test_paper_switch_gives_the_literal_reading_in_every_stage(tmp_path, capsys, table):
    import json

    import h5py

    from helpers import run_cli

    code, out, err = run_cli(capsys, "run", table, "-o", tmp_path / "paper", "--label-column", "label", "--anomaly-values", "bad",
                             "--paper", "--epochs", "4", "--r", "2", "--clusters", "6", "--reselect-clusters", "4", "--json")
    assert code == 0, err
    with h5py.File(tmp_path / "paper" / "clusters.h5") as f:
        assert json.loads(f.attrs["params"])["percentile_over"] == "clusters"
    with h5py.File(tmp_path / "paper" / "model.h5") as f:
        params = json.loads(f.attrs["params"])
        assert (params["percentile_over"], params["tol"], params["score"]) == ("clusters", 0.0, "cosine")
    code, out, err = run_cli(capsys, "train", tmp_path / "paper" / "features.h5", tmp_path / "paper" / "clusters.h5",
                             "-o", tmp_path / "default.model.h5", "--epochs", "2", "--json")
    assert code == 0, err
    with h5py.File(tmp_path / "default.model.h5") as f:
        params = json.loads(f.attrs["params"])
        assert (params["percentile_over"], params["tol"], params["score"]) == ("samples", 0.05, DEFAULTS["score"])


def test_knn_distances_match_brute_force_across_chunks(monkeypatch):
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(1)
    reference = rng.normal(size=(40, 3))
    X = np.vstack([reference[:7], rng.normal(size=(30, 3)), reference[:2] + 1e-3])  # copies, strangers, near-copies
    distances = np.sort(cdist(X, reference), axis=1)
    for k in (1, 3, 5):
        expected = np.where(distances[:, 0] == 0.0, distances[:, 1 : k + 1].mean(axis=1), distances[:, :k].mean(axis=1))
        monkeypatch.setattr(scoring, "_KNN_BLOCK_BYTES", 8 * 8 * len(reference))  # chunks of 8 rows, the last one short
        np.testing.assert_allclose(scoring.knn_distances(reference, X, k), expected, rtol=1e-9, atol=1e-12)
        monkeypatch.setattr(scoring, "_KNN_BLOCK_BYTES", 1)  # one row at a time
        np.testing.assert_allclose(scoring.knn_distances(reference, X, k), expected, rtol=1e-9, atol=1e-12)
        monkeypatch.setattr(scoring, "_KNN_BLOCK_BYTES", 4 << 20)  # all rows at once
        np.testing.assert_allclose(scoring.knn_distances(reference, X, k), expected, rtol=1e-9, atol=1e-12)
    # k beyond the reference: every other reference row
    np.testing.assert_allclose(scoring.knn_distances(reference[:3], reference[:1], 10),
                               [np.linalg.norm(reference[1:3] - reference[0], axis=1).mean()])


def test_average_path_length_is_scikit_learns():
    from sklearn.ensemble._iforest import _average_path_length as reference

    n = np.array([0, 1, 2, 3, 10, 256, 1000])
    np.testing.assert_allclose(scoring._average_path_length(n), reference(n), rtol=1e-12)


def test_parts_enter_the_combination_on_their_own_scale():
    from deepuad.estimators.parts import PARTS

    values = np.array([0.0, 1e-3, 1.0, 100.0])
    errors = {"l2": values, "cosine": values}
    np.testing.assert_allclose(PARTS["l2"]().values(None, errors), np.log(values + 1e-12))  # log scale, finite at 0
    np.testing.assert_array_equal(PARTS["cosine"]().values(None, errors), values)
    reference = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    knn = PARTS["knn"](n_neighbors=1).fit(reference, 0)
    np.testing.assert_allclose(knn.values(np.array([[0.0, 10.0]]), errors), np.log(np.linalg.norm([0.0, 10.0] - reference, axis=1).min() + 1e-12))


def test_knn_distances_keep_float64_precision_far_from_the_origin():
    """Rows far from the origin and close to each other: |x|^2 - 2xy + |y|^2 cancels almost all
    of its digits, so the norms must be taken in float64 even when the rows come as float32;
    and an exact copy must still be recognised (and skipped) at large norms."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(2)
    reference = (1000.0 + rng.normal(size=(30, 4))).astype(np.float32)
    X = np.vstack([reference[:5], 1000.0 + rng.normal(size=(10, 4))]).astype(np.float32)
    distances = np.sort(cdist(X.astype(np.float64), reference.astype(np.float64)), axis=1)
    expected = np.where(distances[:, 0] == 0.0, distances[:, 1:4].mean(axis=1), distances[:, :3].mean(axis=1))
    assert (distances[:5, 0] == 0.0).all()
    np.testing.assert_allclose(scoring.knn_distances(reference, X, 3), expected, rtol=1e-6)
    # float64 rows at |x|^2 ~ 4e8: the copies' squared distances come out as rounding noise
    # (~1e-7, not 0); they are still copies, and are skipped
    reference = 1e4 + rng.normal(size=(30, 4))
    distances = np.sort(cdist(reference[:8], reference), axis=1)
    np.testing.assert_allclose(scoring.knn_distances(reference, reference[:8], 3), distances[:, 1:4].mean(axis=1),
                               rtol=1e-6)


def test_forest_exports_index_arrays_and_fits_one_column():
    forest = scoring.fit_forest(np.arange(50.0)[:, None], random_state=0)  # one column: every feature index is 0
    scoring.check_forest(forest, n_features=1)
    assert {name: forest[name].dtype for name in scoring.FOREST_ARRAYS} == {
        "left": np.int64, "right": np.int64, "feature": np.int64, "threshold": np.float64, "n_samples": np.int64,
        "roots": np.int64, "max_samples": np.int64}


def test_parts_and_scales_are_computed_in_float64():
    from deepuad.estimators.parts import PARTS

    values = np.array([0.1, 0.2, 0.3, 0.4, 0.7], dtype=np.float32)
    for part in ("l2", "cosine"):
        got = PARTS[part]().values(None, {"l2": values, "cosine": values})
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, PARTS[part]().values(None, {"l2": values.astype(np.float64), "cosine": values.astype(np.float64)}))
    assert scoring.robust_scale(values) == scoring.robust_scale(values.astype(np.float64))


def test_reference_sample_is_a_seeded_subset_of_all_rows():
    X, _ = magnitude_anomalies()  # no two rows alike
    a = DeepUAD(seed=0, reference_size=50, **EXPLICIT).fit(X)
    b = DeepUAD(seed=0, reference_size=50, **EXPLICIT).fit(X)
    assert a.reference_.shape == (50, X.shape[1])
    rows = [row.tobytes() for row in X]
    drawn = [row.tobytes() for row in a.reference_]
    assert len(set(drawn)) == 50 and set(drawn) <= set(rows)  # drawn without replacement
    assert sorted(drawn, key=rows.index) == drawn  # in the rows' order
    kept = {row.tobytes() for row in X[a.selected_]}
    assert set(drawn) - kept  # from all rows, not only the kept ones
    np.testing.assert_array_equal(a.reference_, b.reference_)  # the same seed draws the same sample
    whole = DeepUAD(seed=0, reference_size=10_000, **EXPLICIT).fit(X)
    np.testing.assert_array_equal(whole.reference_, X)


def test_cosine_fits_no_scorer_and_knn_scores_against_the_reference():
    X, _ = magnitude_anomalies()
    cosine = DeepUAD(score="cosine", seed=0, **EXPLICIT).fit(X)
    assert cosine.score_parts_ == ("cosine",)
    assert not any(hasattr(cosine, name) for name in ("reference_", "score_center_", "score_weights_"))
    assert not any(name.startswith("scorer/") for name in cosine.get_state()[0])  # a model file holds none
    knn = DeepUAD(score="knn", n_neighbors=3, seed=0, **EXPLICIT).fit(X)  # a part alone: its value (log distance)
    typical = knn.reference_[tails_trim(knn.reference_, knn.reference_trim)]  # the reference its tails leave in
    assert len(typical) < len(knn.reference_)
    np.testing.assert_allclose(knn.decision_function(X), np.log(scoring.knn_distances(typical, X, 3) + 1e-12), rtol=1e-6)
    untrimmed = DeepUAD(score="knn", n_neighbors=3, seed=0, reference_trim=None, **EXPLICIT).fit(X)
    np.testing.assert_allclose(untrimmed.decision_function(X), np.log(scoring.knn_distances(knn.reference_, X, 3) + 1e-12),
                               rtol=1e-6)


def test_scoring_before_the_scorer_is_fitted_is_refused_except_for_cosine():
    X, _ = magnitude_anomalies()
    combined = DeepUAD(seed=0, **EXPLICIT).fit(X)
    del combined.scorer_  # as mid-fit, before the scorer is fitted
    with pytest.raises(RuntimeError, match="no scorer yet"):
        combined.decision_function(X)
    cosine = DeepUAD(score="cosine", seed=0, **EXPLICIT).fit(X)
    expected = cosine.decision_function(X)
    del cosine.scorer_  # the paper's score needs none: it scores mid-fit (ablations do)
    np.testing.assert_array_equal(cosine.decision_function(X), expected)


def test_auto_sizes_are_used_only_when_asked():
    X, _ = magnitude_anomalies()
    auto = DeepUAD(seed=0, **{**EXPLICIT, "layers": "auto", "batch_size": "auto", "epochs": 2}).fit(X)
    assert auto.layers_ == auto_layers(X.shape[1]) == (3, 2)
    assert auto.batch_size_ == auto_batch_size(len(X)) == 32
    told = DeepUAD(seed=0, **{**EXPLICIT, "epochs": 2}).fit(X)
    assert (told.layers_, told.batch_size_) == ((4, 2), 64)


def test_contamination_estimate_counts_rows_beyond_three_robust_deviations():
    def planted(center, unit, tails):
        """Half the body at center - unit, half at center + unit, tails mirrored: the median is
        center and the MAD is unit exactly, so the cut-off is center + 3 * 1.4826 * unit."""
        tails = np.asarray(tails, dtype=np.float64)
        return center + np.r_[np.tile([-unit, unit], 50), tails, -tails]

    # beyond the cut-off: 4.5, 6 and 100; not 4.4, nor a row exactly at it (strictly above counts)
    scores = planted(10.0, 1.0, [4.4, 3.0 * 1.4826, 4.5, 6.0, 100.0])
    assert scoring.estimate_contamination(scores) == pytest.approx(3 / len(scores))
    # a spread below 1 is used as it is: 2.3 and 40 lie beyond 3 * 1.4826 * 0.5 = 2.22
    scores = planted(0.0, 0.5, [2.2, 2.3, 40.0])
    assert scoring.estimate_contamination(scores) == pytest.approx(2 / len(scores))
    # MAD 0 (most rows alike): the standard deviation (0.3) takes its place, so the ones stand out
    assert scoring.estimate_contamination(np.r_[np.zeros(90), np.ones(10)]) == pytest.approx(0.1)
    assert scoring.estimate_contamination(np.full(50, 7.0)) == pytest.approx(1 / 50)  # at least one row


def test_check_forest_refuses_nodes_that_share_a_parent_or_a_parented_root():
    """A file's forest must be trees: children after parents and in range is not enough, a node
    reached from two parents would make a walk a graph search (and its depth ambiguous)."""
    levels = 24
    chain = np.arange(1, levels + 1)
    forest = {"left": np.append(chain, -1), "right": np.append(chain, -1), "feature": np.zeros(levels + 1, np.int64),
              "threshold": np.zeros(levels + 1), "n_samples": np.ones(levels + 1, np.int64), "roots": np.array([0]),
              "max_samples": np.array([256])}
    with pytest.raises(ValueError, match="share a parent"):
        scoring.check_forest(forest, n_features=1)
    stump = {"left": np.array([1, -1, -1]), "right": np.array([2, -1, -1]), "feature": np.zeros(3, np.int64),
             "threshold": np.zeros(3), "n_samples": np.array([2, 1, 1]), "roots": np.array([0, 2]),
             "max_samples": np.array([2])}
    with pytest.raises(ValueError, match="root has one"):
        scoring.check_forest(stump, n_features=1)
    stump["roots"] = np.array([0])
    scoring.check_forest(stump, n_features=1)  # a real tree passes
