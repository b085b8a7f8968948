"""The one contract every detector in deepuad follows (deepuad's own and the baselines).

Modelled on PyOD's ``BaseDetector`` and scikit-learn's estimators:

* parameters are set in ``__init__`` and stored unchanged under the same names;
* ``fit(X)`` learns from unlabelled data and returns ``self``;
* learned state lives in attributes ending in ``_``;
* ``decision_function(X)`` returns one anomaly score per row, **higher = more anomalous**
  (the paper's h(x); note this is the opposite sign of scikit-learn's ``score_samples``);
* ``fit`` sets ``decision_scores_`` (scores of the training rows), ``threshold_`` (the
  ``1 - contamination`` quantile of those scores) and ``labels_`` (1 = anomaly);
* no file or terminal I/O inside a detector: callers (the CLI) do that.
"""

from __future__ import annotations

import numpy as np


class BaseDetector:
    """Base class: subclasses implement ``_fit(X)`` and ``decision_function(X)``."""

    def __init__(self, contamination: float = 0.1):
        self.contamination = contamination

    def fit(self, X: np.ndarray) -> "BaseDetector":
        X = check_array(X)
        self._fit(X)
        self.decision_scores_ = np.asarray(self.decision_function(X), dtype=np.float64)
        self.threshold_ = threshold_for_contamination(self.decision_scores_, self.contamination)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int8)
        return self

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def decision_function(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for rows scored above the threshold learned in ``fit``, else 0."""
        if not hasattr(self, "threshold_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X) first")
        return (self.decision_function(X) > self.threshold_).astype(np.int8)


def check_array(X) -> np.ndarray:
    """A finite, non-empty 2-D float32 array, or ValueError saying what is wrong."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (rows x features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"expected a non-empty array, got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != np.bool_:
        raise ValueError(f"expected numeric data, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"{bad} row(s) contain NaN or infinite values")
    return X


def threshold_for_contamination(scores: np.ndarray, contamination: float) -> float:
    """The score above which a share ``contamination`` of ``scores`` lies."""
    if not 0.0 < contamination <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination}")
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - contamination))
