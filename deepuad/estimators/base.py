"""The one contract every detector in deepuad follows (deepuad's own and the baselines).

Modelled on scikit-learn's estimators (``sklearn.base.BaseEstimator``) and PyOD's ``BaseDetector``:

* ``__init__`` only stores its arguments, unchanged, under the same names; ``get_params``,
  ``set_params`` and ``repr`` are derived from that signature as scikit-learn's are, and
  scikit-learn's ``clone`` and ``Pipeline`` take every detector. They are written out here, as
  PyOD's base class does, instead of inherited from ``sklearn.base.BaseEstimator``: importing
  scikit-learn is slow, and ``deepuad score`` needs none of it (its forest is
  NumPy arrays);
* each estimator declares its parameters' constraints once, in ``_parameter_checks``: name ->
  the kinds its value may be, in scikit-learn's ``_parameter_constraints`` form but deepuad's own
  vocabulary (``constraints.py``; scikit-learn's checks read that name with its own classes,
  which cost ~2 s to import); ``check_params`` (called by ``fit``, and by the stages before any
  work) raises ValueError naming the first parameter that fails; DeepUAD's parameters and the
  range of ``contamination`` are declared in ``params``;
* the seed is ``seed`` in DeepUAD and ``random_state`` (scikit-learn's name) in the baselines
  because both names are recorded in artifacts (a model file's params hold ``seed``, a
  baseline's scores file ``random_state``): renaming either would change those files or need a
  table mapping old names to new, a second declaration; the command line calls both ``--seed``;
* ``fit(X)`` learns from unlabelled data and returns ``self``; learned state ends in ``_``;
* ``decision_function(X)``: one anomaly score per row, **higher = more anomalous** (PyOD; the
  paper's h(x)); ``score_samples(X)`` is its negation, scikit-learn's "higher = more normal";
* ``fit`` sets ``decision_scores_`` (scores of the training rows), ``threshold_`` (their
  ``1 - contamination`` quantile) and ``labels_`` (1 = anomaly); ``predict``,
  ``predict_proba`` and ``predict_confidence`` follow from those, as in PyOD;
* no file or terminal I/O inside a detector: callers (the CLI) do that.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np
from deepuad.estimators.constraints import Integral, Interval, Real, check
from deepuad.estimators.params import BASELINE_DEFAULTS, CONTAMINATION, check_contamination


class BaseDetector:
    """Base class: subclasses implement ``_fit(X)`` and ``decision_function(X)`` and declare
    ``_parameter_checks``."""

    # name -> the kinds its value may be; the message is "<name> must be <what>, got <value>";
    # checked in this order
    _parameter_checks: dict[str, tuple] = {
        "contamination": CONTAMINATION,
    }

    def __init__(self, contamination: float = BASELINE_DEFAULTS["contamination"]):
        self._store_params(locals())

    # ----------------------------------------------------------------- scikit-learn's estimator API
    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The parameters of ``__init__``, sorted (as scikit-learn lists them)."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return sorted(p.name for p in parameters if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict:
        """``__init__``'s parameters and their values (``deep`` is accepted: no parameter is an estimator)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> "BaseDetector":
        """Set parameters by name (unchecked until ``fit``, as in scikit-learn); returns self."""
        names = self._get_param_names()
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"Invalid parameter {name!r} for estimator {type(self).__name__}. Valid parameters are: {names!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        """The class and the parameters that differ from their defaults, as scikit-learn prints them."""
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{name}={value!r}" for name, value in self.get_params().items() if not _same(value, defaults.get(name))]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """What scikit-learn's Pipeline and checks ask of an estimator: an outlier detector, no target."""
        from sklearn.utils import Tags, TargetTags  # only asked by scikit-learn, which is then imported anyway

        return Tags(estimator_type="outlier_detector", target_tags=TargetTags(required=False))

    def _store_params(self, arguments: dict) -> None:
        """``__init__``'s arguments (its ``locals()``), stored unchanged under their own names."""
        for name in self._get_param_names():
            setattr(self, name, arguments[name])

    def check_params(self) -> None:
        """ValueError naming the first parameter that breaks its constraint."""
        for name, constraints in self._parameter_checks.items():
            check(name, getattr(self, name), constraints)

    def fit(self, X, y=None) -> "BaseDetector":
        """Learn from the rows of X; ``y`` is ignored (unsupervised; accepted for Pipeline)."""
        self.check_params()
        X = check_array(X)
        self.n_features_in_ = X.shape[1]
        self._fit(X)
        self.decision_scores_ = np.asarray(self.decision_function(X), dtype=np.float64)
        self._process_decision_scores()
        return self

    def _process_decision_scores(self) -> None:
        """``threshold_`` and ``labels_`` from ``decision_scores_`` and the contamination in use (PyOD's name)."""
        self.threshold_ = threshold_for_contamination(self.decision_scores_, self._contamination_used())
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int8)

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def decision_function(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_samples(self, X) -> np.ndarray:
        """scikit-learn's convention: higher = more normal (the negated ``decision_function``)."""
        return -np.asarray(self.decision_function(X))

    def __sklearn_is_fitted__(self) -> bool:
        """What scikit-learn's ``check_is_fitted`` asks: ``fit`` has set the threshold."""
        return hasattr(self, "threshold_")

    def _require_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise not_fitted(self)

    def predict(self, X, return_confidence: bool = False):
        """1 for rows scored above the threshold learned in ``fit``, else 0 (and, with
        ``return_confidence``, ``predict_confidence(X)`` too)."""
        self._require_fitted()
        labels = (self.decision_function(X) > self.threshold_).astype(np.int8)
        return (labels, self.predict_confidence(X)) if return_confidence else labels

    def predict_proba(self, X, method: str = "linear") -> np.ndarray:
        """(n, 2): the probability of each row being normal / an anomaly (PyOD): ``linear``
        min-max scales the scores by the training scores' range, ``unify`` maps them through the
        Gaussian error function of their standardised value."""
        from scipy.special import erf

        self._require_fitted()
        train = np.asarray(self.decision_scores_, dtype=np.float64)
        test = np.asarray(self.decision_function(X), dtype=np.float64)
        if method == "linear":
            span = train.max() - train.min()
            anomaly = ((test - train.min()) / (span if span > 0 else 1.0)).clip(0, 1)
        elif method == "unify":
            anomaly = erf((test - train.mean()) / (train.std() * np.sqrt(2))).clip(0, 1)
        else:
            raise ValueError(f"method must be linear or unify, got {method!r}")
        return np.column_stack([1 - anomaly, anomaly])

    def predict_confidence(self, X) -> np.ndarray:
        """How sure ``predict`` is of each row's label, in [0, 1] (PyOD's ExCeeD: Perini et al.,
        ECML PKDD 2020): the chance that the label would stay the same for another training set."""
        from scipy.stats import binom

        self._require_fitted()
        train = np.sort(np.asarray(self.decision_scores_, dtype=np.float64))
        test = np.asarray(self.decision_function(X), dtype=np.float64)
        n = len(train)
        below = np.searchsorted(train, test, side="right")  # training scores <= each test score
        posterior = (1 + below) / (2 + n)
        confidence = 1 - binom.cdf(n - int(n * self._contamination_used()), n, posterior)
        flagged = test > self.threshold_
        return np.where(flagged, confidence, 1 - confidence)

    def _contamination_used(self) -> float:
        return self.contamination


def _same(value, default) -> bool:
    try:
        return bool(value is default or value == default)
    except ValueError:  # arrays compare element-wise
        return False


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_array(X, min_samples: int = 1) -> np.ndarray:
    """A finite 2-D float32 array of at least ``min_samples`` rows and one column, or an error
    worded as scikit-learn's ``check_array`` words it (its estimator checks match on those
    words): TypeError for sparse input, ValueError otherwise. Written out rather than
    imported: importing scikit-learn is slow, and ``deepuad score`` needs none of it."""
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError("Sparse data was passed, but dense data is required: use X.toarray() to convert it")
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError("Complex data not supported")
    if X.ndim != 2:
        reshape = " Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row." if X.ndim == 1 else ""
        raise ValueError(f"expected a 2-D array (rows x features), got shape {X.shape}.{reshape}")
    if X.dtype == object:  # numbers held as Python objects are numbers; anything else: NumPy's TypeError
        try:
            X = X.astype(np.float64)
        except ValueError as error:  # text that is no number
            raise ValueError(f"expected numeric data, got dtype object ({error})") from None
    if not np.issubdtype(X.dtype, np.number) and X.dtype != np.bool_:
        raise ValueError(f"expected numeric data, got dtype {X.dtype}")
    if X.shape[0] < min_samples:
        raise ValueError(f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of {min_samples} is required.")
    if X.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"{bad} row(s) contain NaN or infinite values")
    return X


def _check_width(detector, X: np.ndarray) -> None:
    """NotFittedError before ``fit``; ValueError (scikit-learn's words) unless X has as many
    columns as the data ``detector`` was fitted on."""
    if not hasattr(detector, "n_features_in_"):
        raise not_fitted(detector)
    if X.shape[1] != detector.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(detector).__name__} is expecting "
                         f"{detector.n_features_in_} features as input (the number it was fitted with)")


def not_fitted(detector) -> Exception:
    """scikit-learn's NotFittedError (a ValueError and an AttributeError), worded as its
    ``check_is_fitted`` words it; imported only here, when there is one to raise."""
    from sklearn.exceptions import NotFittedError

    return NotFittedError(f"This {type(detector).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                          "arguments before using this estimator.")


def threshold_for_contamination(scores: np.ndarray, contamination: float) -> float:
    """The score above which a share ``contamination`` of ``scores`` lies."""
    check_contamination(contamination)
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - contamination))


# --------------------------------------------------------------------------- parameter tests the estimators share

def _torch_device(value) -> bool:
    import torch

    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        return False
    return True


RANDOM_STATE = (None, Interval(Integral, 0))
POSITIVE_INT = (Interval(Integral, 1),)
POSITIVE_NUMBER = (Interval(Real, 0, closed="neither"),)  # a learning rate
