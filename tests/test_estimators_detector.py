"""The estimator (Python API): re-selection rules, fit/score contract, no labels used."""

import numpy as np
import pytest
import torch

from deepuad import DeepUAD


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 8))
    normal = rng.normal(size=(600, 2)) @ W + 0.05 * rng.normal(size=(600, 8))
    anomalies = rng.uniform(-4, 4, size=(60, 8))
    return np.vstack([normal, anomalies]).astype(np.float32), np.r_[np.zeros(600), np.ones(60)]


@pytest.mark.parametrize("reselect_by", ["error", "variance"])
def test_fit_reselects_every_r_epochs_and_thresholds_at_contamination(data, reselect_by):
    # Whether the method finds anomalies is tested as a mechanism in test_estimators_detector_mechanism.py; on this easy
    # data a plain autoencoder scores as well, so the score's quality is not asserted here.
    X, _ = data
    det = DeepUAD(p0=35, p=20, r=5, epochs=20, batch_size=64, lr=1e-2, layers=(4, 2), reselect_by=reselect_by,
                  reselect_clusters=5, init_clusters=6, tol=0, contamination=0.2).fit(X)
    assert det.decision_scores_.shape == (660,) and np.isfinite(det.decision_scores_).all()
    assert [it.epoch for it in det.iterations_] == list(range(0, det.epoch_ + 1, 5))
    assert det.stop_reason_ == ("converged" if det.converged_ else "epoch budget")
    assert det.converged_ == (det.iterations_[-1].n_changed == 0)  # tol 0: no change is the only stop
    assert det.predict(X).mean() == pytest.approx(0.2, abs=0.01)  # threshold at the contamination


def test_error_reselection_keeps_the_lowest_errors(data):
    X, _ = data
    seen = {}

    def remember(event, det, info):
        if event == "reselect":
            seen["scores"], seen["selected"] = info["scores"], info["iteration"].selected

    DeepUAD(p0=35, p=25, r=3, epochs=3, batch_size=64, layers=(4, 2), init_clusters=6, reselect_by="error", tol=0.05).fit(
        X, callback=remember)
    scores, selected = seen["scores"], seen["selected"]
    assert len(selected) == int(np.sum(scores <= np.quantile(scores, 0.75)))
    assert scores[selected].max() <= np.delete(scores, selected).min()


def test_invalid_parameters_are_refused(data):
    X, _ = data
    for bad in ({"p0": 0}, {"r": 0}, {"lr": -1.0}, {"reselect_by": "magic"}, {"tol": 1.5}, {"layers": (4, 0)}):
        with pytest.raises(ValueError):
            DeepUAD(**bad).fit(X)


def test_mixed_precision_trains_and_scores_in_float32(data, monkeypatch):
    from deepuad.estimators.autoencoder import Autoencoder

    X, y = data
    dtypes = set()
    forward = Autoencoder.forward

    def recording(self, x):
        out = forward(self, x)
        if torch.is_grad_enabled():  # training steps run under autocast; scoring does not
            dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(Autoencoder, "forward", recording)
    det = DeepUAD(p0=35, p=20, r=5, epochs=5, batch_size=64, lr=1e-2, layers=(4, 2), precision="bf16", init_clusters=6,
                  reselect_by="error", tol=0.05).fit(X)
    assert dtypes == {torch.bfloat16}  # the training forward really ran in bfloat16
    assert det.decision_scores_.dtype == np.float64 and np.isfinite(det.decision_scores_).all()
    assert det.epoch_losses_[-1] < det.epoch_losses_[0]  # it learns under autocast
