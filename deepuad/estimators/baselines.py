"""Baseline anomaly detectors the paper compares against.

* :class:`IsolationForestDetector` - scikit-learn's Isolation Forest (Liu et al., 2008);
* :class:`OCSVMDetector` - scikit-learn's One-Class SVM (Schoelkopf et al., 2001) fitted on a
  seeded random subsample;
* :class:`DAGMMDetector` - Deep Autoencoding Gaussian Mixture Model (Zong et al., ICLR 2018)
  written in torch (``dagmm.py``);
* :class:`AutoencoderDetector` - deepuad's autoencoder trained on all rows.

All of them follow :class:`deepuad.estimators.base.BaseDetector`: parameters are stored unchanged in
``__init__``, ``fit(X)`` learns from unlabelled rows, ``decision_function(X)`` returns one
score per row with HIGHER = MORE ANOMALOUS.  No file or terminal I/O happens here.
"""

from __future__ import annotations


import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.svm import OneClassSVM

from deepuad.estimators.base import (
    CONTAMINATION, POSITIVE_INT, POSITIVE_NUMBER, RANDOM_STATE, BaseDetector, _check_width, check_array, is_int,
)
from deepuad.estimators.constraints import Integral, Interval, Options, Real
from deepuad.estimators.dagmm import DAGMMDetector  # written in torch: its own module
from deepuad.estimators.params import BASELINE_DEFAULTS, BASELINE_EPOCHS, BASELINE_LR, DEFAULTS

__all__ = ["IsolationForestDetector", "OCSVMDetector", "DAGMMDetector", "AutoencoderDetector", "BASELINES"]


# --------------------------------------------------------------------------- Isolation Forest

class IsolationForestDetector(BaseDetector):
    """Isolation Forest; the score is the negated ``score_samples`` (higher = more anomalous).

    Parameters
    ----------
    n_estimators : number of isolation trees.
    max_samples : rows drawn per tree: ``"auto"`` (min(256, N)), an int, or a float in (0, 1]
        read as a fraction of N.
    contamination : share of training rows labelled anomalous by ``fit`` (threshold only; the
        forest itself is fitted with scikit-learn's ``contamination="auto"``).
    random_state : seed of the forest.
    """

    _parameter_checks = {
        "n_estimators": POSITIVE_INT,
        "max_samples": (Options(("auto",)), Interval(Integral, 1), Interval(Real, 0, 1, closed="right")),
        "contamination": CONTAMINATION,
        "random_state": RANDOM_STATE,
    }

    def __init__(self, n_estimators=100, max_samples="auto", contamination=BASELINE_DEFAULTS["contamination"], random_state=0):
        self._store_params(locals())

    def _fit(self, X: np.ndarray) -> None:
        max_samples = self.max_samples
        if is_int(max_samples):
            # scikit-learn would warn and clip; clip silently (no terminal output in detectors).
            max_samples = min(int(max_samples), X.shape[0])
        self.model_ = IsolationForest(
            n_estimators=int(self.n_estimators),
            max_samples=max_samples,
            contamination="auto",
            random_state=self.random_state,
        ).fit(X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = check_array(X)
        _check_width(self, X)
        return -self.model_.score_samples(X).astype(np.float64)


# --------------------------------------------------------------------------- One-Class SVM

class OCSVMDetector(BaseDetector):
    """One-Class SVM fitted on a seeded random subsample of at most ``max_train_samples`` rows.

    Fitting a kernel SVM costs O(N^2) kernel evaluations (and up to O(N^3) time) and the
    libsvm kernel cache grows with N^2, so on KDDCUP-sized data (about 250k training rows) a
    full fit would take hours.  10000 rows keep the fit to seconds or tens of seconds on one
    CPU core, the full kernel matrix would fit in 0.8 GB (libsvm caches only part of it), and
    with ``nu=0.1`` the model keeps at least ~1000 support vectors, so scoring stays linear in
    the number of scored rows and the subsample is still large enough to describe the
    normal-data support on the benchmark sets.  ``max_train_samples=None`` disables the cap.

    Scores are the negated ``score_samples`` (higher = more anomalous), computed in chunks of
    ``_SCORE_CHUNK`` rows to bound the memory of the test-vs-support-vector kernel block.

    Parameters
    ----------
    kernel, nu, gamma : passed to :class:`sklearn.svm.OneClassSVM` (``gamma="scale"`` is
        resolved on the training subsample).
    max_train_samples : cap on the number of training rows (None = no cap).
    contamination : share of training rows labelled anomalous by ``fit``.
    random_state : seed of the subsample.
    """

    _SCORE_CHUNK = 10000
    _KERNELS = ("linear", "poly", "rbf", "sigmoid")

    _parameter_checks = {
        "kernel": (Options(_KERNELS),),
        "nu": (Interval(Real, 0, 1, closed="right"),),
        "gamma": (Options(("scale", "auto")), Interval(Real, 0, closed="neither")),
        "max_train_samples": (None, *POSITIVE_INT),
        "contamination": CONTAMINATION,
        "random_state": RANDOM_STATE,
    }

    def __init__(self, kernel="rbf", nu=0.1, gamma="scale", max_train_samples=BASELINE_DEFAULTS["max_train_samples"],
                 contamination=BASELINE_DEFAULTS["contamination"], random_state=0):
        self._store_params(locals())

    def _fit(self, X: np.ndarray) -> None:
        n = X.shape[0]
        if self.max_train_samples is not None and n > self.max_train_samples:
            rng = np.random.default_rng(self.random_state)
            idx = np.sort(rng.choice(n, size=int(self.max_train_samples), replace=False))
            X_train = X[idx]
        else:
            idx = None
            X_train = X
        self.train_indices_ = idx  # rows of X the SVM was fitted on (None = all rows)
        self.model_ = OneClassSVM(kernel=self.kernel, nu=float(self.nu), gamma=self.gamma).fit(
            X_train.astype(np.float64)
        )

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = check_array(X)
        _check_width(self, X)
        out = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], self._SCORE_CHUNK):
            chunk = X[start:start + self._SCORE_CHUNK].astype(np.float64)
            out[start:start + chunk.shape[0]] = -self.model_.score_samples(chunk)
        return out


# --------------------------------------------------------------------------- plain autoencoder

class AutoencoderDetector(BaseDetector):
    """deepuad's own autoencoder trained on ALL rows, with no selection and no re-selection.

    The ablation that shows what the clustering buys: same network, loss, optimiser and
    cosine score as :class:`deepuad.DeepUAD`, but the training set is the whole input.
    """

    # the network's other parameters are DeepUAD's, checked by it in fit; these are checked
    # before (the command line calls check_params before any work)
    _parameter_checks = {
        "contamination": CONTAMINATION,
        "epochs": POSITIVE_INT,  # at least one: the network is trained on all rows, not just built
        "lr": POSITIVE_NUMBER,
    }

    def __init__(self, epochs=BASELINE_EPOCHS["ae"], batch_size=BASELINE_DEFAULTS["batch_size"], lr=BASELINE_LR["ae"],
                 layers=BASELINE_DEFAULTS["layers"], activation=DEFAULTS["activation"], loss=DEFAULTS["loss"],
                 device="cpu", random_state=0, contamination=BASELINE_DEFAULTS["contamination"]):
        self._store_params(locals())

    def _fit(self, X: np.ndarray) -> None:
        from .detector import DeepUAD

        # r > epochs: no re-selection ever happens, the training set stays "all rows"
        self.detector_ = DeepUAD(
            epochs=self.epochs, r=self.epochs + 1, batch_size=self.batch_size, lr=self.lr, layers=self.layers if self.layers == "auto" else tuple(self.layers),
            activation=self.activation, loss=self.loss, device=self.device, seed=self.random_state or 0, score="cosine",
        ).fit(X, initial=np.arange(len(X)))

    def decision_function(self, X) -> np.ndarray:
        X = check_array(X)
        _check_width(self, X)
        return self.detector_.decision_function(X).astype(np.float64)


# --------------------------------------------------------------------------- registry


# name -> detector class (what `deepuad baseline --method` offers)
BASELINES = {
    "ae": AutoencoderDetector,
    "iforest": IsolationForestDetector,
    "ocsvm": OCSVMDetector,
    "dagmm": DAGMMDetector,
}
