"""The estimator contract (deepuad.estimators.base): DeepUAD and every baseline work with
scikit-learn's clone, get_params/set_params and a Pipeline after a scaler; score_samples follows
scikit-learn (higher = more normal); decision_function, decision_scores_, threshold_, labels_,
predict, predict_proba and predict_confidence follow PyOD's BaseDetector."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy.special import erf
from scipy.stats import binom
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from deepuad import DeepUAD
from deepuad.estimators.baselines import AutoencoderDetector, DAGMMDetector, IsolationForestDetector, OCSVMDetector

SMALL = {
    "deepuad": lambda: DeepUAD(p0=35, p=30, r=2, epochs=4, batch_size=32, layers=(4, 2), init_clusters=4, reselect_by="error",
                               reference_size=100, contamination=0.1),
    "iforest": lambda: IsolationForestDetector(n_estimators=20, contamination=0.1),
    "ocsvm": lambda: OCSVMDetector(max_train_samples=200, contamination=0.1),
    "ae": lambda: AutoencoderDetector(epochs=10, batch_size=32, layers=(4, 2), contamination=0.1),
    "dagmm": lambda: DAGMMDetector(hidden=(6, 3, 1), n_gmm=2, epochs=2, batch_size=32, contamination=0.1),
}


def data(n=240, d=8, seed=0, offset=False):
    """Normal rows near the centre of [0, 1]^d; the last 12 far away, in another direction. With
    ``offset`` moved and stretched far from [0, 1] (a scaler in front then matters)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.5, 0.05, size=(n, d))
    X[-12:, : d // 2], X[-12:, d // 2 :] = 0.95, 0.05
    return (X * 3 + 10 if offset else X).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    X = data()
    return X, {name: make().fit(X) for name, make in SMALL.items()}


@pytest.mark.parametrize("name", SMALL)
def test_get_params_is_the_init_signature_and_set_params_round_trips(name):
    det = SMALL[name]()
    names = [p for p in inspect.signature(type(det).__init__).parameters if p != "self"]
    assert sorted(det.get_params()) == sorted(names)
    first = names[0]
    value = det.get_params()[first]
    assert det.set_params(**{first: value}) is det and det.get_params()[first] == value


@pytest.mark.parametrize("name", SMALL)
def test_clone_gives_an_unfitted_copy_with_the_same_params(name, fitted):
    _, detectors = fitted
    copy = clone(detectors[name])
    assert copy.get_params() == detectors[name].get_params()
    assert not hasattr(copy, "decision_scores_") and not hasattr(copy, "threshold_")


@pytest.mark.parametrize("name", SMALL)
def test_a_pipeline_after_a_scaler_fits_and_scores_like_the_detector_on_scaled_rows(name):
    X = data(offset=True)
    pipe = make_pipeline(MinMaxScaler(), SMALL[name]()).fit(X)
    alone = SMALL[name]().fit(MinMaxScaler().fit_transform(X))
    np.testing.assert_allclose(pipe.decision_function(X), alone.decision_function(MinMaxScaler().fit(X).transform(X)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pipe.predict(X), alone.predict(MinMaxScaler().fit(X).transform(X)))
    assert make_pipeline(StandardScaler(), SMALL[name]()).fit(X).score_samples(X).shape == (len(X),)


@pytest.mark.parametrize("name", SMALL)
def test_pyod_surface(name, fitted):
    X, detectors = fitted
    det = detectors[name]
    scores = det.decision_function(X)
    # fit sets decision_scores_ (the training rows' scores), threshold_ and labels_
    np.testing.assert_allclose(det.decision_scores_, scores, rtol=1e-6, atol=1e-6)
    assert det.threshold_ == pytest.approx(np.quantile(det.decision_scores_, 0.9))
    np.testing.assert_array_equal(det.labels_, (det.decision_scores_ > det.threshold_).astype(int))
    assert set(np.unique(det.labels_)) <= {0, 1} and 0 < det.labels_.sum() < len(X)
    # the far rows score highest: decision_function is higher = more anomalous
    assert scores[-12:].mean() > scores[:-12].mean()
    # scikit-learn's score_samples: higher = more normal
    np.testing.assert_allclose(det.score_samples(X), -scores, rtol=1e-6)
    np.testing.assert_array_equal(det.predict(X), (scores > det.threshold_).astype(int))
    labels, confidence = det.predict(X, return_confidence=True)
    np.testing.assert_array_equal(labels, det.predict(X))
    np.testing.assert_allclose(confidence, det.predict_confidence(X))


@pytest.mark.parametrize("name", ["deepuad", "iforest"])
def test_predict_proba_and_confidence_are_pyods_formulas(name, fitted):
    X, detectors = fitted
    det = detectors[name]
    train, test = np.asarray(det.decision_scores_, float), np.asarray(det.decision_function(X), float)
    linear = ((test - train.min()) / (train.max() - train.min())).clip(0, 1)
    np.testing.assert_allclose(det.predict_proba(X), np.column_stack([1 - linear, linear]), rtol=1e-6)
    unify = erf((test - train.mean()) / (train.std() * np.sqrt(2))).clip(0, 1)
    np.testing.assert_allclose(det.predict_proba(X, method="unify")[:, 1], unify, rtol=1e-6)
    with pytest.raises(ValueError):
        det.predict_proba(X, method="softmax")
    # PyOD's predict_confidence, written out row by row
    n = len(train)
    expected = []
    for value in test:
        posterior = (1 + np.count_nonzero(train <= value)) / (2 + n)
        confidence = 1 - binom.cdf(n - int(n * 0.1), n, posterior)
        expected.append(confidence if value > det.threshold_ else 1 - confidence)
    np.testing.assert_allclose(det.predict_confidence(X), expected, rtol=1e-9)
    assert ((0 <= det.predict_confidence(X)) & (det.predict_confidence(X) <= 1)).all()


@pytest.mark.parametrize("name", SMALL)
def test_invalid_parameters_are_refused_by_fit_not_stored_silently(name):
    det = SMALL[name]().set_params(contamination=0.9)
    with pytest.raises(ValueError, match="contamination"):
        det.fit(data())
