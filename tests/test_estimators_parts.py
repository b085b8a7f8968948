"""The score parts (parts.py) and the trim cleaning rule (cleaning.py): what each one is fitted on,
its centre and spread, and what it sees."""

import json

import h5py
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import replace_dataset, rewrite, run_cli
from deepuad.errors import InputError
from deepuad.estimators import cleaning, explain, parts, scoring
from deepuad.estimators.detector import DeepUAD
from deepuad.inputs.decoding import Decoder

SMALL = dict(p0=20, p=15, r=5, epochs=10, batch_size=64, layers=(4, 2), tol=0.05)


def array_encoding(width):
    """The encoding of an array's columns, unscaled (what ``extract`` records for a NumPy array)."""
    return {"array": True, "offset": [0.0] * width, "scale": [1.0] * width}


def table(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32)


def test_range_part_is_zero_inside_the_range_and_grows_without_bound_outside():
    reference = np.linspace(0.0, 1.0, 201)[:, None] * np.ones((1, 3))  # every column 0..1
    part = parts.PARTS["range"]().fit(reference, 0)
    np.testing.assert_array_equal(part.low_, 0.0)  # no value lies beyond the fence: the whole range
    np.testing.assert_array_equal(part.high_, 1.0)
    inside = np.full((1, 3), 0.5)
    just_out, far_out = inside.copy(), inside.copy()
    just_out[0, 1], far_out[0, 1] = 1.2, 11.0
    below = inside.copy()
    below[0, 2] = -3.0
    values = part.values(np.vstack([inside, just_out, far_out, below]), {})
    np.testing.assert_allclose(values, [0.0, 0.2, 10.0, 3.0])
    assert values[2] > values[1] > 0  # far outside scores higher than just outside: no saturation


def test_range_part_is_not_widened_by_spikes_among_the_reference_rows():
    rng = np.random.default_rng(0)
    reference = rng.random((300, 2))
    reference[:3, 0] = [11.0, 12.0, -9.0]  # three spikes in column 0 (1 % of the rows), kept in the reference
    part = parts.PARTS["range"]().fit(reference, 0)
    normal = reference[3:, 0]
    assert part.low_[0] == normal.min() and part.high_[0] == normal.max()  # fenced out: 1st-99th percentile +- 3 inner ranges
    assert part.low_[1] == reference[:, 1].min() and part.high_[1] == reference[:, 1].max()
    spikes = part.values(reference[:3], {})
    assert (spikes > 9.0).all()  # each spike still lies about ten ranges out


def test_range_part_of_a_nearly_constant_column_falls_back_to_order_statistics():
    reference = np.zeros((300, 2))
    reference[:2, 0] = [2.0, 4.0]  # two rows off the mode (< 1 %): no inner range, and the 2nd..(n-2)th range is empty
    part = parts.PARTS["range"]().fit(reference, 0)
    assert part.span_[0] == pytest.approx(2.0)  # second smallest (0) to second largest (2)
    assert part.span_[1] == 1.0  # a constant column: a unit span
    assert part.values(np.array([[6.0, 0.0]]), {})[0] == pytest.approx((6.0 - 2.0) / 2.0)


def test_knn_part_counts_copies_of_a_row_as_one_neighbour():
    rng = np.random.default_rng(0)
    reference = rng.random((200, 3)).astype(np.float32)
    odd = np.full((8, 3), 5.0, dtype=np.float32)  # eight identical anomalies among the reference rows
    part = parts.PARTS["knn"](5).fit(np.vstack([reference, odd]), 0)
    assert len(part.reference_) == 201  # the copies are one row
    far = part.values(odd[:1], {})[0]
    near = part.values(reference[:1], {})[0]
    # the copy itself is skipped once; its neighbours are the other rows, about 7 away, not its copies at 0
    assert far > np.log(6.0) > near
    restored = parts.PARTS["knn"](5).restore({"reference": reference, **part.state()}, 3)
    np.testing.assert_array_equal(restored.values(odd, {}), part.values(odd, {}))
    # a version-1 model made before the part kept its own rows: its reader hands it the shared
    # reference rows, and it measures against them, copies and all
    from deepuad.artifacts.model import _v1_state

    arrays = {"scorer/reference": np.vstack([reference, odd])}
    _v1_state(arrays, {"score_parts": list(parts.SCORES["distance"])}, {"complete": True, "contamination_estimate": 0.1})
    shared = parts.PARTS["knn"](5).restore({name[len("scorer/"):]: values for name, values in arrays.items()}, 3)
    assert shared.values(odd[:1], {})[0] < np.log(1e-6)
    with pytest.raises(KeyError):  # a version-2 model holds its own rows
        parts.PARTS["knn"](5).restore({"reference": reference}, 3)


def test_range_part_refuses_arrays_it_could_not_have_fitted():
    part = parts.PARTS["range"]().fit(table(50, 3), 0)
    state = part.state()
    parts.PARTS["range"]().restore(state, 3)  # its own state reads back
    for bad in ({**state, "range/span": np.array([1.0, 0.0, 1.0])}, {**state, "range/low": np.array([np.nan, 0.0, 0.0])},
                {**state, "range/high": np.zeros(2)}):
        with pytest.raises(ValueError, match="scorer range"):
            parts.PARTS["range"]().restore(bad, 3)


def test_combine_averages_the_standardised_parts_and_adds_the_others():
    values = [np.array([1.0, 3.0]), np.array([2.0, 2.0]), np.array([0.0, 5.0])]
    got = parts.combine(values, ("knn", "l2", "range"), np.array([1.0, 2.0, 0.0]), np.array([2.0, 1.0, 1.0]), np.ones(3))
    np.testing.assert_allclose(got, [(0.0 + 0.0) / 2 + 0.0, (1.0 + 0.0) / 2 + 5.0])
    weighted = parts.combine(values[:2], ("knn", "l2"), np.zeros(2), np.ones(2), np.array([1.0, 3.0]))
    np.testing.assert_allclose(weighted, [(1.0 + 3 * 2.0) / 4, (3.0 + 3 * 2.0) / 4])


def test_a_new_part_needs_one_class_and_one_registration(monkeypatch, tmp_path, capsys):
    class ColumnZero(parts.Part):
        """Column 0 less its median over the reference rows."""

        name = "column0"
        covers = "rows whose first column is large"
        stores = {"column0/median": parts.Stored("f", 1, "column0 part: the reference rows' median of column 0", length=1)}

        def fit(self, reference, seed):
            self.median_ = float(np.median(reference[:, 0]))
            return self

        def values(self, X, errors):
            return np.asarray(X, dtype=np.float64)[:, 0] - self.median_

        def state(self):
            return {"column0/median": np.array([self.median_])}

        def restore(self, arrays, n_features):
            self.median_ = float(arrays["column0/median"][0])
            return self

    from deepuad.artifacts import model  # noqa: F401 (its schema is made before the part is registered)

    monkeypatch.setitem(parts.PARTS, "column0", ColumnZero)
    X = table()
    np.savez(tmp_path / "x.npz", X=X)
    features, path = tmp_path / "x.features.h5", tmp_path / "m.h5"
    assert run_cli(capsys, "extract", tmp_path / "x.npz", "-o", features, "--scale", "none")[0] == 0
    det = DeepUAD(score="column0", seed=0, **SMALL).fit(X)  # a part is a score of its own, by its name
    assert det.score_parts_ == ("column0",)
    typical = X[cleaning.tails_trim(X, det.reference_trim)]  # fitted on the reference (all rows here) its tails leave in
    np.testing.assert_allclose(det.decision_scores_, X[:, 0] - np.median(typical[:, 0]), rtol=1e-6)
    # explain measures its score: only column 0 moves it, by as much as it lies above its expected value
    rows = X[np.argsort(-X[:, 0])[:3]]
    contributions, _ = explain.column_contributions(det, rows, Decoder(array_encoding(6), 6), np.zeros_like(rows))
    np.testing.assert_allclose(contributions[:, 0], rows[:, 0], rtol=1e-6)
    assert (contributions[:, 1:] == 0).all()
    # a model file stores it and reads it back, scoring as before, in Python and at the command line
    det.save(path)
    np.testing.assert_array_equal(DeepUAD.load(path).decision_function(X), det.decision_function(X))
    code, _, err = run_cli(capsys, "score", path, features, "-o", tmp_path / "x.scores.h5", "--force")
    assert code == 0, err
    with h5py.File(tmp_path / "x.scores.h5") as f:
        np.testing.assert_array_equal(f["score"][()], det.decision_function(X))
    code, out, err = run_cli(capsys, "explain", path, features, "--top", "1", "--force", "--json")
    assert code == 0, err
    top = json.loads(out)["rows"][0]
    assert top["id"] == np.argmax(X[:, 0]) and (top["columns"][0]["column"], top["columns"][0]["share"]) == ("x0", 1.0)
    # and checks what it declares: a crafted median of two values is refused, naming it
    rewrite(path, lambda f: replace_dataset(f, "scorer/column0/median", np.zeros(2)))
    with pytest.raises(InputError, match=r"^\S*m\.h5: dataset 'scorer/column0/median' has 2 entries, expected 1"):
        DeepUAD.load(path)


def test_network_forest_and_range_learn_the_kept_rows_and_the_other_parts_all_rows_but_their_tails():
    X = table()
    det = DeepUAD(score="distance+forest", seed=0, **SMALL).fit(X)
    assert 0 < len(det.selected_) < len(X)  # the network learnt the kept rows only
    np.testing.assert_array_equal(det.reference_, X)  # fewer rows than reference_size: all of them, not the kept ones
    typical = X[cleaning.tails_trim(X, det.reference_trim)]  # the reference less the rows far in its tails
    assert 0 < len(X) - len(typical) < len(X) / 2
    by_name = dict(zip(det.score_parts_, det.parts_))
    np.testing.assert_array_equal(by_name["knn"].reference_, np.unique(typical, axis=0))
    kept = X[det.selected_].astype(np.float64)  # the range: the kept rows' (all of them, fewer than reference_size)
    np.testing.assert_array_equal(by_name["range"].low_, kept.min(axis=0))
    np.testing.assert_array_equal(by_name["range"].high_, kept.max(axis=0))
    assert (kept.min(axis=0) > X.min(axis=0)).any() or (kept.max(axis=0) < X.max(axis=0)).any()  # not all rows' range
    # the forest: grown on the kept rows too, the very forest scoring.fit_forest grows on them
    expected = scoring.fit_forest(X[det.selected_], random_state=0)
    assert set(by_name["iforest"].forest_) == set(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(by_name["iforest"].forest_[name], values)
    # each standardised part's centre and scale: its median and robust IQR over the rows it was fitted on
    on_reference, on_kept = det.score_parts(typical), det.score_parts(X[det.selected_])
    for name, center, scale in zip(det.score_parts_, det.score_center_, det.score_scale_):
        if parts.PARTS[name].standardised:
            values = (on_kept if parts.PARTS[name].fitted_on == "kept" else on_reference)[name]
            assert center == pytest.approx(np.median(values))
            assert scale == pytest.approx(scoring.robust_scale(values)[1])
    assert [parts.PARTS[name].fitted_on for name in det.score_parts_] == ["reference", "reference", "kept", "kept"]


def test_the_trimmed_reference_shows_the_k_nn_part_a_group_of_anomalies_many_and_alike():
    """A tenth of the rows, tight and far out in 12 of 20 columns: against the whole reference each of
    them has its nearest neighbours in the group and the k-NN part ranks the group below almost every
    normal row; trimmed by its tails, the reference holds none of the group, and the group ranks first."""
    rng = np.random.default_rng(1)
    group = rng.normal(size=(100, 20))
    group[:, :12] = 6.0 + 0.05 * group[:, :12]
    X = np.vstack([rng.normal(size=(900, 20)), group]).astype(np.float32)
    y = np.r_[np.zeros(900), np.ones(100)]
    trimmed = DeepUAD(score="knn", seed=0, **SMALL).fit(X)
    whole = DeepUAD(score="knn", seed=0, reference_trim=None, **SMALL).fit(X)
    assert roc_auc_score(y, whole.decision_scores_) < 0.1 < 0.99 < roc_auc_score(y, trimmed.decision_scores_)


def test_distance_score_ranks_a_spike_above_the_normal_rows_however_wide_the_table():
    rng = np.random.default_rng(3)
    X = rng.random((600, 80)).astype(np.float32)
    spiked = np.arange(0, 600, 60)
    columns = rng.integers(80, size=len(spiked))
    X[spiked, columns] = 1.0 + 10.0  # ten ranges above the maximum, one column each
    det = DeepUAD(score="distance", seed=0, **SMALL).fit(X)
    normal = np.setdiff1d(np.arange(600), spiked)
    assert (det.decision_scores_[spiked] > np.percentile(det.decision_scores_[normal], 99)).all()


def test_range_less_the_level_normal_rows_reach_by_chance_in_units_of_that_level():
    """On 400 sparse columns (a rare stroke in each), a range fitted on 1,000 rows leaves many other
    normal rows beyond some column's range, by up to hundreds of its (tiny) ranges; the calibrated
    range calls almost none of them far, while a value beyond that level L still is, in units of
    (1 + L) ranges, and farther out scores higher."""
    rng = np.random.default_rng(0)
    X = (rng.random((2000, 400)) < 0.01) * rng.random((2000, 400))
    part = parts.OutsideRange().fit(X[:1000], seed=0)
    uncalibrated = parts.OutsideRange()._fit_range(X[:1000])
    uncalibrated.offset_ = 0.0
    level = part.offset_ / (1 - part.offset_)  # stored as L / (1 + L)
    assert level > 1
    np.testing.assert_allclose(part.span_, uncalibrated.span_ * (1 + level))
    held_out, raw = part.values(X[1000:], {}), uncalibrated.values(X[1000:], {})
    assert np.mean(raw > 0) > 0.1 and np.mean(held_out > 0) < 0.06
    np.testing.assert_allclose(held_out, np.maximum(raw - level, 0) / (1 + level))  # (d - L) / (1 + L)
    spikes = np.repeat(X[1000:1001], 2, axis=0)
    for row, ranges in enumerate((10, 20)):
        spikes[row, 7] = uncalibrated.high_[7] + (level + ranges * (1 + level)) * uncalibrated.span_[7]
    np.testing.assert_allclose(part.values(spikes, {}), [10, 20])
    # a narrow table of plain values: normal rows hardly ever leave the range, and nothing is taken off
    assert parts.OutsideRange().fit(rng.normal(size=(2000, 5)), seed=0).offset_ < 0.05


def test_spikes_among_the_kept_rows_do_not_set_the_level():
    """Three per cent of the kept rows spiked far out (the cleaning kept them): the level comes from
    the normal rows (the 95th percentile of the held half), so every spike still scores far out."""
    rng = np.random.default_rng(1)
    X = rng.random((1000, 6))
    spiked = rng.choice(1000, size=30, replace=False)
    X[spiked, rng.integers(6, size=30)] = 11.0  # ten ranges above the maximum
    part = parts.OutsideRange().fit(X, seed=0)
    assert part.offset_ < 0.05
    assert (part.values(X[spiked], {}) > 5).all()
    assert np.mean(part.values(np.delete(X, spiked, axis=0), {}) > 0) < 0.01


def test_distance_score_survives_get_state_and_restore():
    X = table()
    det = DeepUAD(score="distance", seed=0, **SMALL).fit(X)
    arrays, meta = det.get_state()
    assert {"scorer/reference", "scorer/knn/reference", "scorer/range/low", "scorer/range/high", "scorer/range/span"} <= set(arrays)
    fresh = DeepUAD(score="distance", seed=0, **SMALL)
    fresh.set_state((arrays, meta), X.shape[1], len(X), with_optimizer=False)
    np.testing.assert_array_equal(fresh.decision_function(X), det.decision_function(X))
    missing = {k: v for k, v in arrays.items() if not k.startswith("scorer/range/")}
    with pytest.raises(ValueError, match="range"):
        DeepUAD(score="distance", seed=0, **SMALL).set_state((missing, meta), X.shape[1], len(X), with_optimizer=False)


def test_trim_keeps_the_rows_within_the_fence_of_the_kept_rows():
    outlyingness = np.concatenate([np.linspace(0.0, 1.0, 100), [1.2, 5.0, 50.0]])
    kept = np.arange(100)  # the fence comes from these rows: upper quartile 0.75, IQR 0.5 -> 1.5
    selected, threshold = cleaning.trim(outlyingness, 1.5, kept)
    assert threshold == pytest.approx(0.75 + 1.5 * 0.5, rel=1e-3)
    np.testing.assert_array_equal(selected, np.arange(101))  # 1.2 comes in, 5 and 50 stay out
    assert cleaning.trim(outlyingness, 0.1, kept)[0].tolist() == list(range(80))  # fence 0.8
    # the fence is the kept rows': over all 103 rows the upper quartile and IQR are larger
    assert len(cleaning.trim(outlyingness, 0.1, np.arange(103))[0]) > 80


def test_trim_drops_a_cluster_that_stands_out_as_a_whole_and_never_keeps_less_than_half():
    outlyingness = np.concatenate([np.zeros(50), np.linspace(0, 1, 50), np.full(20, 1.4)])
    labels = np.concatenate([np.zeros(100, int), np.ones(20, int)])
    everyone = np.arange(120)
    assert len(cleaning.trim(outlyingness, 3.0, everyone)[0]) == 120
    selected, _ = cleaning.trim(outlyingness, 3.0, everyone, labels, cluster_cutoff=0.2)
    np.testing.assert_array_equal(selected, np.arange(100))  # cluster 1's median 1.4 is beyond 0.75 + 0.2 x 1
    least, threshold = cleaning.trim(np.arange(10.0), 0.01, np.arange(2))  # a fence that would keep 2 of 10 rows
    assert len(least) == 5 and threshold == 4.0


def test_trim_rule_keeps_more_rows_when_there_are_fewer_anomalies():
    """The kept share follows the data: the paper's fixed p0 drops a fixed share of the rows."""
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(size=(990, 5)), rng.normal(6.0, 1.0, size=(10, 5))]).astype(np.float32)
    paper = DeepUAD(score="distance", seed=0, **SMALL).fit(X)
    trim = DeepUAD(score="distance", init_by="trim", reselect_by="trim", seed=0, **SMALL).fit(X)
    assert len(paper.iterations_[0].selected) < 0.85 * len(X)  # p0 = 20: a fifth of the rows left out
    assert len(trim.iterations_[0].selected) > 0.95 * len(X) and len(trim.selected_) > 0.95 * len(X)
    assert (trim.selected_ < 990).all()  # and no anomaly


def test_initial_outlyingness_sees_a_group_far_from_the_rest():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(900, 4)), rng.normal(8.0, 1.0, size=(100, 4))]).astype(np.float32)
    outlyingness = cleaning.initial_outlyingness(X, seed=0)
    group, normal = outlyingness[900:], outlyingness[:900]
    assert np.median(group) > np.percentile(normal, 99) and np.mean(group > np.percentile(normal, 90)) > 0.9


# ----------------------------------------------------------------------------- "auto": the parts chosen by the data
def strokes(n=600, d=300, seed=0):
    """Pixel-like rows: every column blank but for rare strokes of any strength (normal rows lie far
    beyond some column's range by chance)."""
    rng = np.random.default_rng(seed)
    return ((rng.random((n, d)) < 0.02) * rng.random((n, d)) ** 4).astype(np.float32)


def test_auto_leaves_the_per_column_parts_out_only_on_wide_data_where_rows_leave_the_range_by_chance():
    narrow = parts.parts_of("distance+tails")
    assert parts.parts_of("auto") == narrow  # on most data
    wide = strokes()
    assert parts.OutsideRange().fit(wide, 0).level_ >= parts.WIDE_LEVEL
    assert parts.resolve("auto", wide, 0) == ("knn", "l2", "cosine")
    assert parts.resolve("auto", wide[:, : parts.WIDE_COLUMNS - 1], 0) == narrow  # one column short of wide
    assert parts.resolve("auto", wide[:, : parts.WIDE_COLUMNS], 0) == ("knn", "l2", "cosine")
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(600, 300))  # as many columns, but normal rows stay in range, and every value distinct
    assert parts.OutsideRange().fit(dense, 0).level_ < 1 and parts.resolve("auto", dense, 0) == ("knn", "l2", "range")
    flags = (rng.random((600, 300)) < 0.005).astype(np.float32)  # wide rare 0/1 flags: a row is one range out at most
    assert parts.OutsideRange().fit(flags, 0).level_ == 1.0 and parts.resolve("auto", flags, 0) == narrow
    assert parts.resolve("distance+tails", wide, 0) == narrow  # only "auto" chooses
    assert parts.resolve("distance+tails", dense, 0) == narrow
    assert parts.resolve("auto", dense[:, : parts.WIDE_COLUMNS - 1], 0) == narrow  # one column short of dense


def test_dense_data_is_many_columns_of_mostly_distinct_values(monkeypatch):
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(400, 250))
    assert parts.modal_share(dense) == 1 / 400 and parts.data_kind(dense, 0) == "dense"
    assert parts.resolved_score("auto", dense, 0) == "knn2+l2+range" and parts.resolved_score("l2", dense, 0) == "l2"
    # the share is the median column's: half the columns holding one value in every row is not dense, 1 fewer is
    half = dense.copy()
    half[:, :125] = 0.0
    assert parts.modal_share(half) == pytest.approx((1.0 + 1 / 400) / 2)
    assert parts.data_kind(half, 0) == "narrow"
    assert parts.data_kind(np.c_[half[:, :124], dense[:, 124:]], 0) == "dense"
    # the threshold: a column whose most common value 20 of 400 rows hold (5 %) is dense, 21 is not
    rounded = np.repeat(np.arange(20, dtype=np.float64), 20)[:, None] + np.zeros((1, 250))
    rounded = rng.permuted(rounded, axis=0)
    assert parts.modal_share(rounded) == parts.DENSE_MODAL_SHARE and parts.data_kind(rounded, 0) == "dense"
    monkeypatch.setattr(parts, "DENSE_MODAL_SHARE", np.nextafter(parts.DENSE_MODAL_SHARE, 0))
    assert parts.data_kind(rounded, 0) == "narrow"
    assert parts.data_kind(dense[:1], 0) == "narrow" and parts.data_kind(dense[:, 0], 0) == "narrow"


def test_auto_level_threshold_is_at_least_wide_level(monkeypatch):
    wide = strokes()
    level = parts.OutsideRange().fit(wide, 0).level_
    monkeypatch.setattr(parts, "WIDE_LEVEL", level)
    assert parts.resolve("auto", wide, 0) == ("knn", "l2", "cosine")
    monkeypatch.setattr(parts, "WIDE_LEVEL", np.nextafter(level, np.inf))
    assert parts.resolve("auto", wide, 0) == parts.parts_of("distance+tails")
    # the level is that of a range fitted as the score fits it, with the same seed
    assert parts.OutsideRange().fit(wide, 1).level_ != level


def test_default_score_on_dense_data_weighs_the_k_nn_part_twice_and_is_stored(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 220)).astype(np.float32)
    det = DeepUAD(seed=0, **SMALL).fit(X)
    assert det.score == "auto" and det.score_parts_ == ("knn", "l2", "range")
    assert det.score_weights_.tolist() == [2.0, 1.0, 1.0]
    # the score: the z-scores' weighted mean, the k-NN part counted twice, the range part added as it is
    values = det.score_parts(X)
    z = {n: (values[n] - c) / s for n, c, s in zip(det.score_parts_, det.score_center_, det.score_scale_)}
    np.testing.assert_allclose(det.decision_function(X), (2 * z["knn"] + z["l2"]) / 3 + values["range"], rtol=1e-5, atol=1e-5)
    # the same network, reference and kept rows as the narrow default: its k-NN, squared-error and range parts
    narrow = DeepUAD(score="distance+tails", seed=0, **SMALL).fit(X)
    for name in ("knn", "l2", "range"):
        i, j = det.score_parts_.index(name), narrow.score_parts_.index(name)
        assert det.score_center_[i] == narrow.score_center_[j] and det.score_scale_[i] == narrow.score_scale_[j]
        np.testing.assert_array_equal(values[name], narrow.score_parts(X)[name])
    path = tmp_path / "m.h5"
    det.save(path)
    back = DeepUAD.load(path)
    assert back.score_parts_ == ("knn", "l2", "range") and back.score_weights_.tolist() == [2.0, 1.0, 1.0]
    np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))


def test_default_finds_a_later_spike_on_dense_data():
    """A spike in a batch scored after the fit, ten ranges above a column's maximum, among dense rows: every
    one scores above the normal rows' 99th percentile, and the range part, which stays on dense data, alone
    lifts it above them all."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 220)).astype(np.float32)
    det = DeepUAD(seed=0, **SMALL).fit(X)
    assert det.score_parts_ == ("knn", "l2", "range")
    later = rng.normal(size=(400, 220)).astype(np.float32)
    spiked, columns = rng.choice(400, size=20, replace=False), rng.choice(220, size=20)
    span = X.max(axis=0) - X.min(axis=0)
    later[spiked, columns] = X.max(axis=0)[columns] + 10 * span[columns]
    scores = det.decision_function(later)
    normal = np.setdiff1d(np.arange(400), spiked)
    assert (scores[spiked] > np.percentile(scores[normal], 99)).all()
    # the range part alone, added as it is, lifts each spike above every normal row's score
    assert (det.score_parts(later)["range"][spiked] > scores[normal].max()).all()


def test_default_score_on_wide_pixel_like_data_is_knn_and_the_two_errors_and_is_stored(tmp_path):
    X = strokes(seed=1)
    det = DeepUAD(seed=0, **SMALL).fit(X)
    assert det.score == "auto" and det.score_parts_ == ("knn", "l2", "cosine")
    assert [p.name for p in det.parts_] == ["knn", "l2", "cosine"]
    # the rule read the kept rows: the sample the score's range would be fitted on
    narrow = DeepUAD(score="distance+tails", seed=0, **SMALL).fit(X)
    kept = narrow.parts_[narrow.score_parts_.index("range")]
    assert kept.level_ >= parts.WIDE_LEVEL
    # the same network and reference: the k-NN and squared-error parts are the same, standardised alike
    for name in ("knn", "l2"):
        i, j = det.score_parts_.index(name), narrow.score_parts_.index(name)
        assert det.score_center_[i] == narrow.score_center_[j] and det.score_scale_[i] == narrow.score_scale_[j]
    # the cosine error is standardised over the reference rows the k-NN part is fitted on (trimmed by its tails)
    from deepuad.estimators.autoencoder import reconstruction_errors
    from deepuad.estimators.cleaning import tails_trim
    typical = det.reference_[tails_trim(det.reference_, det.reference_trim)]
    center, scale = scoring.robust_scale(reconstruction_errors(det.model_, typical)[1])
    c = det.score_parts_.index("cosine")
    assert det.score_center_[c] == pytest.approx(center, rel=1e-6) and det.score_scale_[c] == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(det.score_parts(X)["cosine"], reconstruction_errors(det.model_, X)[1], rtol=1e-6)
    z = {n: (det.score_parts(X)[n] - c) / s for n, c, s in zip(det.score_parts_, det.score_center_, det.score_scale_)}
    np.testing.assert_allclose(det.decision_function(X), (z["knn"] + z["l2"] + z["cosine"]) / 3, rtol=1e-5, atol=1e-5)
    path = tmp_path / "m.h5"
    det.save(path)
    back = DeepUAD.load(path)
    assert back.score == "auto" and back.score_parts_ == ("knn", "l2", "cosine")
    np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))
    # on a narrow table the same default keeps every part
    assert DeepUAD(seed=0, **SMALL).fit(table()).score_parts_ == parts.parts_of("distance+tails")


def test_default_finds_a_later_spike_on_wide_pixel_like_data():
    """A spike in a batch scored after the fit, ten ranges above a column's maximum: among pixel-like
    rows it lies no farther beyond the range than normal rows do by chance, so a score led by the
    range misses it; the k-NN and network parts see it (the row moves away from every other)."""
    X = strokes(n=800, seed=2)
    det = DeepUAD(seed=0, **SMALL).fit(X)
    later = strokes(n=400, seed=3)
    rng = np.random.default_rng(4)
    spiked = rng.choice(400, size=20, replace=False)
    columns = rng.choice(np.flatnonzero(X.max(axis=0) > X.min(axis=0)), size=20)
    later[spiked, columns] = X.max(axis=0)[columns] + 10 * (X.max(axis=0) - X.min(axis=0))[columns]
    normal = np.setdiff1d(np.arange(400), spiked)
    scores = det.decision_function(later)
    assert det.score_parts_ == ("knn", "l2", "cosine")
    assert (scores[spiked] > np.percentile(scores[normal], 99)).all()
    # the squared error is what keeps them found beside the cosine error, which is blind to magnitude:
    # the k-NN part and the cosine error alone miss some
    values = det.score_parts(later)
    z = {n: (values[n] - c) / s for n, c, s in zip(det.score_parts_, det.score_center_, det.score_scale_)}
    without_l2 = (z["knn"] + z["cosine"]) / 2
    assert np.mean(without_l2[spiked] > np.percentile(without_l2[normal], 99)) < 1
    # the per-column parts' noise leads there: with them (the tails or the forest, and the range) most are missed
    for score in ("distance+tails", "distance+forest"):
        four = DeepUAD(score=score, seed=0, **SMALL).fit(X).decision_function(later)
        assert np.mean(four[spiked] > np.percentile(four[normal], 99)) < 0.5, score


def test_tails_part_sums_each_columns_smaller_tail_and_sees_a_tight_group_far_out():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(399, 4))
    part = parts.PARTS["tails"]().fit(reference, 0)
    assert (np.diff(part.sorted_, axis=0) >= 0).all() and part.sorted_.shape == (399, 4)
    middle = np.median(reference, axis=0, keepdims=True)
    beyond = reference.max(axis=0, keepdims=True) + 1.0  # past every row, in every column
    below = reference.min(axis=0, keepdims=True) - 1.0
    values = part.values(np.vstack([middle, beyond, below]), {})
    # the median: about half the rows on either side; beyond all of them: 1 / (n + 1) in each column
    assert values[0] == pytest.approx(4 * -np.log(200 / 400), abs=0.02)
    np.testing.assert_allclose(values[1:], 4 * np.log(400.0))  # both tails count, bounded by log(n + 1)
    # a tight group of anomalies, one another's nearest neighbours: the k-NN part finds them close
    # to rows (each other), the tails part finds them in every column's tail
    group = rng.normal(loc=3.0, scale=0.05, size=(20, 4))
    rows = np.vstack([reference, group])
    tails = parts.PARTS["tails"]().fit(rows, 0).values(rows, {})
    knn = parts.PARTS["knn"](5).fit(rows, 0).values(rows, {})
    assert tails[399:].min() > np.percentile(tails[:399], 99)
    assert knn[399:].max() < np.percentile(knn[:399], 10)
    restored = parts.PARTS["tails"]().restore(part.state(), 4)
    np.testing.assert_array_equal(restored.values(reference, {}), part.values(reference, {}))


@pytest.mark.parametrize("sorted_rows", [np.array([[2.0], [1.0]]), np.array([[1.0], [np.nan]]), np.zeros((0, 1)),
                                         np.zeros((3, 2))])
def test_tails_part_refuses_arrays_fit_could_not_have_made(sorted_rows):
    with pytest.raises(ValueError):
        parts.PARTS["tails"]().restore({"tails/sorted": sorted_rows}, 1)


def test_tails_part_counts_ties_on_both_sides_and_scores_any_number_of_rows_alike():
    reference = np.array([[0.0], [0.0], [0.0], [1.0], [1.0]])  # ties: a sorted column holds equal values
    part = parts.PARTS["tails"]().restore(parts.PARTS["tails"]().fit(reference, 0).state(), 1)
    # at 0: 3 rows at or below it, 5 at or above it; at 1: 5 and 2; at 0.5: 3 and 2
    np.testing.assert_allclose(part.values(np.array([[0.0], [1.0], [0.5]]), {}),
                               -np.log(np.array([4.0, 3.0, 3.0]) / 6.0))
    many = np.random.default_rng(1).normal(size=(16500, 1))  # more rows than one block
    values = part.values(many, {})
    np.testing.assert_array_equal(values[16380:16390], part.values(many[16380:16390], {}))
    assert values.dtype == np.float64 and values.shape == (16500,)
    with pytest.raises(ValueError, match="tails"):
        parts.PARTS["tails"]().restore({"tails/sorted": reference[::-1]}, 1)
