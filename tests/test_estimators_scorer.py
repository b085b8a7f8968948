"""The fitted score (scorer.Scorer) pinned exactly, apart from DeepUAD: which rows each part is fitted
on, each part's centre, spread and weight, how the parts combine into the score and the counting
score, the NumPy-only surface explain reads, and the checks on a stored scorer. (The score on data,
through DeepUAD: tests/test_estimators_parts.py, test_estimators_scoring.py.)"""

import numpy as np
import pytest
import torch

from deepuad.estimators import parts, scoring
from deepuad.estimators.autoencoder import Autoencoder, reconstruction_errors
from deepuad.estimators.parts import OutsideRange
from deepuad.estimators.scorer import Scorer


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(120, 4)) * [1.0, 2.0, 0.5, 3.0]).astype(np.float32)
    X[100:] += 6.0  # rows the model did not keep
    rows = np.arange(0, 120, 2)  # the reference: every other row, kept or not
    kept_rows = np.arange(0, 100, 3)  # a sample of the kept rows
    torch.manual_seed(0)
    model = Autoencoder(4, (3, 2), activation="tanh")
    return X, rows, kept_rows, model


def test_each_part_is_fitted_centred_and_spread_on_its_rows(data):
    X, rows, kept_rows, model = data
    kept = rows < 100
    scorer = Scorer.fit("distance", X, rows, seed=5, n_neighbors=3, model=model, kept=kept, kept_rows=kept_rows)
    assert scorer.score == "distance" and scorer.score_parts_ == ("knn", "l2", "range") and scorer.n_features_in_ == 4
    np.testing.assert_array_equal(scorer.reference_, X[rows])
    np.testing.assert_array_equal(scorer.reference_kept_, kept)
    knn, l2, range_ = scorer.parts_
    np.testing.assert_array_equal(knn.reference_, np.unique(X[rows], axis=0))  # the reference, all rows
    expected = OutsideRange().fit(X[kept_rows], seed=5)  # the range: the kept rows' sample, the scorer's seed
    for name in ("low_", "high_", "span_", "offset_"):
        np.testing.assert_array_equal(getattr(range_, name), getattr(expected, name))
    # centre and spread: each part's median and robust spread over the rows it was fitted on (the
    # range: the kept rows' sample)
    _, _, squares = reconstruction_errors(model, X[rows])
    values = [knn.values(X[rows], {}), np.log(squares.astype(np.float64) + 1e-12), range_.values(X[kept_rows], {})]
    for i, v in enumerate(values):
        assert (scorer.score_center_[i], scorer.score_scale_[i]) == scoring.robust_scale(v)
    np.testing.assert_array_equal(scorer.score_weights_, [1.0, 1.0, 1.0])  # no weights named: 1 each
    assert scorer.score_weights_.dtype == np.float64
    # the parts' values of other rows, through the network on the default device, combine into the score
    got, codes, cosines = scorer.values(X, model)
    assert codes.shape == (120, 2) and cosines.shape == (120,)
    z = [(v - c) / s for v, c, s in zip(got[:2], scorer.score_center_, scorer.score_scale_)]
    score, counting = scorer.scores(got)
    assert score.dtype == counting.dtype == np.float32
    np.testing.assert_allclose(score, ((z[0] + z[1]) / 2 + got[2]).astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(counting, score)  # equal weights: the score counts itself


def test_the_forest_is_grown_centred_and_spread_on_the_kept_rows(data):
    X, rows, kept_rows, model = data
    scorer = Scorer.fit("distance+forest", X, rows, seed=5, n_neighbors=3, model=model, kept=rows < 100,
                        kept_rows=kept_rows)
    forest = scorer.parts_[scorer.score_parts_.index("iforest")]
    expected = scoring.fit_forest(X[kept_rows], random_state=5)
    for name, values in expected.items():
        np.testing.assert_array_equal(forest.forest_[name], values)
    i = scorer.score_parts_.index("iforest")
    assert (scorer.score_center_[i], scorer.score_scale_[i]) == scoring.robust_scale(forest.values(X[kept_rows], {}))
    assert (scorer.score_center_[i], scorer.score_scale_[i]) != scoring.robust_scale(forest.values(X[rows], {}))


def test_without_a_kept_sample_the_range_is_fitted_on_the_reference_and_every_reference_row_is_kept(data):
    X, rows, _, _ = data
    scorer = Scorer.fit("range", X, rows, seed=1, n_neighbors=3)
    assert scorer.reference_kept_.dtype == bool and scorer.reference_kept_.all()
    np.testing.assert_array_equal(scorer.parts_[0].high_, OutsideRange().fit(X[rows], seed=1).high_)


def test_a_score_of_the_range_alone_is_fitted_on_the_kept_rows_and_scores_with_numpy_alone(data):
    X, rows, kept_rows, _ = data
    scorer = Scorer.fit("range", X, rows, seed=1, n_neighbors=3, kept=rows < 100, kept_rows=kept_rows)
    np.testing.assert_array_equal(scorer.parts_[0].high_, OutsideRange().fit(X[kept_rows], seed=1).high_)
    values, codes, cosines = scorer.values(X)
    assert codes is None and cosines is None  # no network asked for, none run
    np.testing.assert_array_equal(scorer.decision_function(X), values[0].astype(np.float32))


def test_numpy_only_scorer_checks_and_reads_rows_as_float32(data):
    X, rows, _, _ = data
    scorer = Scorer.fit("knn", X, rows, seed=0, n_neighbors=3)
    expected = np.log(scoring.knn_distances(np.unique(X[rows], axis=0), X, 3) + 1e-12)
    assert set(scorer.score_parts(X)) == {"knn"}
    np.testing.assert_array_equal(scorer.score_parts(X)["knn"], expected)
    np.testing.assert_array_equal(scorer.decision_function(X), expected.astype(np.float32))
    wide = X.astype(np.float64) * (1.0 + 1e-3 * np.pi)  # values float32 cannot hold: read as float32
    np.testing.assert_array_equal(scorer.decision_function(wide), scorer.decision_function(wide.astype(np.float32)))
    with pytest.raises(ValueError, match=r"^X has 3 features, but the model expects 4$"):
        scorer.decision_function(X[:, :3])
    with pytest.raises(ValueError, match=r"^X has 4 features, but the model expects 4$"):
        scorer.decision_function(X[0])  # one row, not a table
    with pytest.raises(ValueError, match=r"^X has 1 features, but the model expects 4$"):
        scorer.decision_function(X[:, :, None])


class Column0(parts.Part):
    """A registered part whose values come as float32: the scorer computes in float64."""

    name = "column0"

    def values(self, X, errors):
        return np.asarray(X, dtype=np.float32)[:, 0] * np.float32(1.1)


def test_weighted_parts_are_counted_by_their_plain_mean(data, monkeypatch):
    """A score whose parts are weighted (none of them 1): ranked by the weighted mean of the robust
    z-scores, counted (the share flagged) by their plain mean."""
    X, rows, _, _ = data
    monkeypatch.setitem(parts.PARTS, "column0", Column0)
    monkeypatch.setitem(parts.SCORES, "knn+column0", ("knn", "column0"))
    monkeypatch.setitem(parts.WEIGHTS, "knn+column0", {"knn": 2.0, "column0": 3.0})
    scorer = Scorer.fit("knn+column0", X, rows, seed=0, n_neighbors=3)
    np.testing.assert_array_equal(scorer.score_weights_, [2.0, 3.0])
    values = list(scorer.score_parts(X).values())
    assert all(v.dtype == np.float64 for v in values)
    np.testing.assert_array_equal(values[1], (X[:, 0] * np.float32(1.1)).astype(np.float64))
    z = [(v - c) / s for v, c, s in zip(values, scorer.score_center_, scorer.score_scale_)]
    score, counting = scorer.scores(values)
    assert score.dtype == counting.dtype == np.float32
    np.testing.assert_allclose(score, (2 * z[0] + 3 * z[1]) / 5, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(counting, (z[0] + z[1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scorer.decision_function(X), score)  # the score, not the counting one


@pytest.fixture
def stored(data):
    X, rows, kept_rows, model = data
    scorer = Scorer.fit("distance", X, rows, seed=5, n_neighbors=3, model=model, kept=rows < 100, kept_rows=kept_rows)
    return scorer, scorer.state(), X, model


def restore(arrays):
    return Scorer.restore("distance", ("knn", "l2", "range"), arrays, 4, 3)


def test_restore_gives_back_the_fitted_scorer(stored):
    scorer, state, X, model = stored
    assert state["scorer/reference_kept"].dtype == np.uint8  # one byte per row in a model file
    restored = restore(state)
    assert restored.score == "distance" and restored.n_features_in_ == 4
    assert restored.reference_kept_.dtype == bool
    np.testing.assert_array_equal(restored.reference_[restored.reference_kept_], scorer.reference_[scorer.reference_kept_])
    np.testing.assert_array_equal(restored.scores(restored.values(X, model)[0])[0], scorer.scores(scorer.values(X, model)[0])[0])
    two = restore({**state, "scorer/reference": state["scorer/reference"][:2], "scorer/reference_kept": np.array([1, 0], np.uint8)})
    assert len(two.reference_) == 2  # two reference rows are enough


def test_restore_reads_the_arrays_in_the_types_the_scorer_computes_in(stored):
    scorer, state, X, model = stored
    converted = {name: (values.astype(np.float32) if name in ("scorer/score_center", "scorer/score_scale", "scorer/score_weights")
                        else values.astype(np.float64) if name in ("scorer/reference", "scorer/knn/reference") else values)
                 for name, values in state.items()}
    restored = restore(converted)
    assert restored.reference_.dtype == restored.parts_[0].reference_.dtype == np.float32
    assert all(a.dtype == np.float64 for a in (restored.score_center_, restored.score_scale_, restored.score_weights_))
    np.testing.assert_array_equal(restored.score_center_, state["scorer/score_center"].astype(np.float32))


def test_restore_refuses_unknown_parts_naming_them(stored):
    with pytest.raises(ValueError, match=r"^unknown score parts \['knn', 'bogus'\]$"):
        Scorer.restore("distance", ("knn", "bogus"), stored[1], 4, 3)


@pytest.mark.parametrize("name, bad, message", [
    ("scorer/reference", np.zeros((60, 3), np.float32), r"^scorer reference has shape \(60, 3\), expected \(>= 2, 4\)$"),
    ("scorer/reference", np.zeros((60, 4, 1), np.float32), r"^scorer reference has shape \(60, 4, 1\), expected \(>= 2, 4\)$"),
    ("scorer/reference", np.zeros((1, 4), np.float32), r"^scorer reference has shape \(1, 4\), expected \(>= 2, 4\)$"),
    ("scorer/reference", np.full((60, 4), np.inf, np.float32), r"^scorer calibration is not finite or does not match its parts$"),
    ("scorer/score_center", np.zeros(2), r"^scorer calibration is not finite or does not match its parts$"),
    ("scorer/score_center", np.array([0.0, np.nan, 0.0]), r"^scorer calibration is not finite or does not match its parts$"),
    ("scorer/score_scale", np.array([1.0, 0.0, 1.0]), r"^scorer calibration is not finite or does not match its parts$"),
    ("scorer/score_scale", np.array([1.0, np.inf, 1.0]), r"^scorer calibration is not finite or does not match its parts$"),
    ("scorer/score_weights", np.array([1.0, np.inf, 1.0]), r"^scorer calibration is not finite or does not match its parts$"),
    ("scorer/reference_kept", np.ones(59, np.uint8), r"^scorer reference_kept is not one 0 or 1 per reference row \(60\)$"),
    ("scorer/reference_kept", np.full(60, 2, np.uint8), r"^scorer reference_kept is not one 0 or 1 per reference row \(60\)$"),
])
def test_restore_refuses_a_scorer_fit_could_not_have_made(stored, name, bad, message):
    with pytest.raises(ValueError, match=message):
        restore({**stored[1], name: bad})


def test_the_score_that_chooses_by_the_data_reads_the_kept_sample_with_the_fit_seed(data, monkeypatch):
    X, rows, kept_rows, model = data
    seen = []

    def spy(score, kept, seed):
        seen.append((score, np.array(kept), seed))
        return parts.resolved_score(score, kept, seed)

    monkeypatch.setattr("deepuad.estimators.scorer.resolved_score", spy)
    scorer = Scorer.fit("auto", X, rows, seed=7, n_neighbors=3, model=model, kept=rows < 100, kept_rows=kept_rows)
    (score, kept, seed), = seen
    assert score == "auto" and seed == 7
    np.testing.assert_array_equal(kept, X[kept_rows])  # the rows the range would be fitted on
    assert scorer.score == "auto" and scorer.score_parts_ == parts.parts_of("distance+tails")  # 4 narrow columns


def test_the_paper_score_fits_nothing_and_keeps_its_name_and_width(data):
    X, rows, _, _ = data
    scorer = Scorer.fit("cosine", X, rows, seed=0, n_neighbors=3)
    assert scorer.score == "cosine" and scorer.score_parts_ == parts.PAPER and scorer.n_features_in_ == X.shape[1]
    assert not hasattr(scorer, "reference_") and scorer.state() == {}
