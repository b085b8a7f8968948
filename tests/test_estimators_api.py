"""DeepUAD and the baselines as scikit-learn estimators: pickling, save/load, NotFittedError,
n_features_in_ and the width check, and scikit-learn's own estimator checks (each one that
cannot pass listed with its reason). Tiny data and few epochs: the API is under test, not
the detection.

Two of scikit-learn's checks, that a method gives the same rows for a subset or a permutation of
X (``check_methods_subset_invariance``, ``check_methods_sample_order_invariance``), allow about
1e-7. The float32 networks of AutoencoderDetector and DAGMMDetector round
a row's score in its last bits by the batch it is computed in, and how much depends on the CPU's
kernels: on one kind a check passed and on another it failed. Those checks are skipped for those
two detectors, and ``test_the_float32_detectors_score_a_row_alike_in_any_batch_or_order`` checks
the same property at a tolerance that rounding cannot break (measured: a quarter of it at most)."""

import pickle

import h5py
import joblib
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepuad import DeepUAD
from deepuad.estimators.baselines import AutoencoderDetector, DAGMMDetector, IsolationForestDetector, OCSVMDetector

FAST = {  # each estimator as the checks below fit it: seconds, not minutes
    DeepUAD: dict(epochs=2, r=1),
    IsolationForestDetector: dict(n_estimators=10),
    OCSVMDetector: {},
    AutoencoderDetector: dict(epochs=1),
    DAGMMDetector: dict(epochs=1, hidden=(4, 2, 1)),
}


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(0, 1, (190, 6)), rng.normal(6, 1, (10, 6))]).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return DeepUAD(epochs=4, r=2, seed=0).fit(X)


# --------------------------------------------------------------------------- pickling
@pytest.mark.parametrize("cls", [DeepUAD, AutoencoderDetector])  # the autoencoder baseline holds a DeepUAD
def test_a_fitted_model_pickles_and_scores_the_same_to_the_bit(cls, X, tmp_path):
    detector = cls(**FAST[cls]).fit(X)
    scores = detector.decision_function(X)
    for copy in (pickle.loads(pickle.dumps(detector)), _joblib_round_trip(detector, tmp_path / "model.joblib")):
        np.testing.assert_array_equal(copy.decision_function(X), scores)
        np.testing.assert_array_equal(copy.predict(X), detector.predict(X))
        assert copy.threshold_ == detector.threshold_


def _joblib_round_trip(detector, path):
    joblib.dump(detector, path)
    return joblib.load(path)


def test_an_unpickled_model_fits_again_as_a_new_one_would(X):
    """Pickling drops training's step machinery; fit builds it again."""
    copy = pickle.loads(pickle.dumps(DeepUAD(epochs=2, r=1, seed=3).fit(X)))
    np.testing.assert_array_equal(copy.fit(X).decision_scores_, DeepUAD(epochs=2, r=1, seed=3).fit(X).decision_scores_)


# --------------------------------------------------------------------------- save / load
def test_save_then_load_scores_the_same_to_the_bit(fitted, X, tmp_path):
    fitted.save(tmp_path / "model.h5")
    loaded = DeepUAD.load(tmp_path / "model.h5")
    np.testing.assert_array_equal(loaded.decision_function(X), fitted.decision_function(X))
    np.testing.assert_array_equal(loaded.decision_scores_, fitted.decision_scores_)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert (loaded.threshold_, loaded.contamination_, loaded.n_features_in_, loaded.stop_reason_) == (
        fitted.threshold_, fitted.contamination_, 6, fitted.stop_reason_)
    assert loaded.get_params() == fitted.get_params()
    # saved again from the loaded model (which has no optimiser): the same model
    loaded.save(tmp_path / "again.h5")
    np.testing.assert_array_equal(DeepUAD.load(tmp_path / "again.h5").decision_function(X), fitted.decision_function(X))


def test_a_contamination_given_is_saved_with_the_model(X, tmp_path):
    detector = DeepUAD(epochs=2, r=1, contamination=0.05).fit(X)
    detector.save(tmp_path / "model.h5")
    loaded = DeepUAD.load(tmp_path / "model.h5")
    assert loaded.contamination == 0.05 and loaded.labels_.sum() == detector.labels_.sum() == 10


def test_the_saved_file_is_a_model_artifact_of_plain_arrays(fitted, tmp_path):
    from deepuad import artifacts as art

    fitted.save(tmp_path / "model.h5")
    with art.open_artifact(tmp_path / "model.h5", "model") as f:  # the reader every stage uses
        assert bool(f.attrs["complete"])
        kinds = set()
        f.visititems(lambda name, obj: kinds.add(obj.dtype.kind) if isinstance(obj, h5py.Dataset) else None)
    assert kinds <= set("fiub"), kinds  # numbers only: nothing to unpickle


def test_save_is_atomic_a_failed_save_keeps_the_old_file(fitted, tmp_path, monkeypatch):
    path = tmp_path / "model.h5"
    fitted.save(path)
    before = path.read_bytes()
    arrays, state = fitted.get_state()
    monkeypatch.setattr(fitted, "get_state", lambda: ({**arrays, "not_an_array": object()}, state))
    with pytest.raises(TypeError):
        fitted.save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.h5"]


def test_load_refuses_an_unfinished_checkpoint(fitted, tmp_path):
    from deepuad.artifacts import model as model_artifact
    from deepuad.errors import InputError

    arrays, state = fitted.get_state()
    architecture = {"n_features": 6, "layers": list(fitted.layers_), "activation": fitted.activation}
    model_artifact.write(tmp_path / "checkpoint.h5", arrays, state, architecture, fitted.get_params(), {}, "", {}, len(fitted.decision_scores_),
                         complete=False, stop_reason="")
    with pytest.raises(InputError, match="unfinished training run"):
        DeepUAD.load(tmp_path / "checkpoint.h5")


# --------------------------------------------------------------------------- not fitted, width
@pytest.mark.parametrize("cls", list(FAST))
def test_an_unfitted_detector_raises_not_fitted_error(cls):
    detector = cls(**FAST[cls])
    for method in ("decision_function", "score_samples", "predict", "predict_proba", "predict_confidence"):
        with pytest.raises(NotFittedError, match=f"This {cls.__name__} instance is not fitted yet"):
            getattr(detector, method)(np.zeros((3, 4), np.float32))
    if cls is DeepUAD:
        with pytest.raises(NotFittedError):
            detector.save("never-written.h5")


@pytest.mark.parametrize("cls", list(FAST))
def test_fit_sets_n_features_in_and_another_width_is_a_clear_value_error(cls, X):
    detector = cls(**FAST[cls])
    assert not hasattr(detector, "n_features_in_")
    detector.fit(X)
    assert detector.n_features_in_ == 6
    for method in ("decision_function", "predict"):
        with pytest.raises(ValueError, match=rf"^X has 5 features, but {cls.__name__} is expecting 6 features as input"):
            getattr(detector, method)(X[:, :5])
    with pytest.raises(ValueError, match="Reshape your data"):
        detector.decision_function(X[0])


def test_score_parts_are_public_and_make_the_score(fitted, X):
    from deepuad.estimators.parts import combine

    parts = fitted.score_parts(X)
    assert tuple(parts) == fitted.score_parts_ and all(values.shape == (len(X),) for values in parts.values())
    score = combine(list(parts.values()), fitted.score_parts_, fitted.score_center_, fitted.score_scale_, fitted.score_weights_)
    np.testing.assert_allclose(score, fitted.decision_function(X), atol=1e-5)


# --------------------------------------------------------------------------- scikit-learn's estimator checks
PYOD_CONVENTION = ("PyOD's convention, which every deepuad detector keeps: predict gives 1 for an anomaly and 0 "
                   "otherwise, decision_function is higher for more anomalous rows; scikit-learn's outlier detectors "
                   "give -1/+1 and a decision_function negative for outliers")
SCORE_PARAMETER = ("DeepUAD's parameter `score` (which anomaly score; recorded in model files, the command line's "
                   "--score) hides the optional score(X, y) method this check calls")
EXPECTED_FAILURES = {
    DeepUAD: {"check_outliers_train": PYOD_CONVENTION, "check_fit_score_takes_y": SCORE_PARAMETER,
              "check_pipeline_consistency": SCORE_PARAMETER, "check_n_features_in_after_fitting": SCORE_PARAMETER},
    IsolationForestDetector: {"check_outliers_train": PYOD_CONVENTION},
    OCSVMDetector: {"check_outliers_train": PYOD_CONVENTION},
    AutoencoderDetector: {"check_outliers_train": PYOD_CONVENTION},
    DAGMMDetector: {"check_outliers_train": PYOD_CONVENTION},
}
# checks whose outcome depends on the machine for these detectors: skipped, and replaced below
FLOAT32_DETECTORS = (AutoencoderDetector, DAGMMDetector)
FLOAT32_BATCHES = ("check_methods_subset_invariance", "check_methods_sample_order_invariance")


@parametrize_with_checks([cls(**params) for cls, params in FAST.items()],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILURES[type(estimator)], xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    if isinstance(estimator, FLOAT32_DETECTORS) and name in FLOAT32_BATCHES:
        pytest.skip(f"{name} allows 1e-7, and a float32 network rounds a row's score in its last bits by the batch it "
                    "is computed in (torch's CPU matrix products block by batch size), by how much depending on the "
                    "CPU's kernels: passes on one kind of CPU, fails on another. Checked within rounding by "
                    "test_the_float32_detectors_score_a_row_alike_in_any_batch_or_order")
    check(estimator)


# Rounding moved a row's value by at most a quarter of this on an AMD EPYC (AutoencoderDetector and
# DAGMMDetector; this file's X and the checks' 20x3 uniform data; five permutations, one row at a
# time). A score that depends on the other rows scored with it fails: 1e-4 times the batch's mean
# added to the autoencoder's moved rows by 6e-4, DAGMM's mixture means moved 1 % towards the
# batch's moved them by up to 0.85.
BATCH_TOLERANCE = dict(rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("data", ["X", "checks"])
@pytest.mark.parametrize("cls", FLOAT32_DETECTORS)
def test_the_float32_detectors_score_a_row_alike_in_any_batch_or_order(cls, data, request):
    """What check_methods_subset_invariance and check_methods_sample_order_invariance check, within
    float32 rounding: each method gives a row the same value whether X is scored whole, one row at
    a time, in batches of 7 or permuted; predict's label may differ only where the score lies within
    that rounding of the threshold. On this file's X and on the checks' own data."""
    X = request.getfixturevalue("X") if data == "X" else 3 * np.random.RandomState(0).uniform(size=(20, 3))
    detector = cls(**FAST[cls]).fit(X)
    order = np.random.default_rng(0).permutation(len(X))
    scores = detector.decision_function(X)
    for method in ("decision_function", "score_samples", "predict_proba", "predict"):
        apply = getattr(detector, method)
        whole = np.asarray(apply(X))
        ways = {"one row at a time": np.concatenate([apply(X[i : i + 1]) for i in range(len(X))]),
                "in batches of 7": np.concatenate([apply(X[i : i + 7]) for i in range(0, len(X), 7)]),
                "permuted": np.asarray(apply(X[order]))[np.argsort(order)]}
        for way, values in ways.items():
            if method == "predict":
                near = np.isclose(scores, detector.threshold_, **BATCH_TOLERANCE)
                assert np.array_equal(values[~near], whole[~near]), (method, way)
            else:
                np.testing.assert_allclose(values, whole, **BATCH_TOLERANCE, err_msg=f"{method}, {way}")
