"""A Gaussian mixture fitted by EM: scikit-learn's ``GaussianMixture`` algorithm, with every
component handled at once.

Why not scikit-learn's class: its full-covariance E and M steps loop over the components in
Python, one small matrix product each, and the re-selection's z (up to 20,000 rows of a few dozen
columns, 20 components) is where that loop dominates. Here each step is a few whole-array
products, and the products of column pairs that both steps need are computed once per fit. The
algorithm is scikit-learn's, step for step (k-means initialisation as its ``KMeans(n_init=1)``,
the same M step, ``reg_covar`` on the diagonal, the same stopping rule on the mean
log-likelihood, a final assignment), so the labels are scikit-learn's up to rounding
(tests/test_estimators_mixture.py compares the two).

All four of scikit-learn's covariance types: "full" (the re-selection), "diag" (the initial
clustering), "tied" and "spherical" (offered by ``deepuad cluster --covariance``).

One departure, for large data only: with ``init_sample`` the k-means that initialises EM runs on
that many seeded random rows, and every row then starts in the component of its nearest centre;
EM itself runs on all rows. On large data the k-means on all rows costs as much as EM. Data with
at most ``init_sample`` rows gets scikit-learn's initialisation, unchanged (clustering.fit_gmm
passes 20,000).
"""

from __future__ import annotations

import math

import numpy as np

from deepuad.estimators.kmeans import assign, kmeans

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class GaussianMixture:
    """``fit(X)`` then ``predict(X)``; learned ``weights_``, ``means_``, ``covariances_``,
    ``precisions_cholesky_``, ``n_iter_``, ``converged_``, ``lower_bound_``. A covariance that
    is not positive definite raises ValueError, as scikit-learn's does (callers retry with a
    larger ``reg_covar``). ``init_sample``: the most rows the initial k-means sees (None: all)."""

    def __init__(self, n_components=1, covariance_type="full", reg_covar=1e-6, max_iter=100, tol=1e-3, random_state=None,
                 init_sample=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.init_sample = init_sample

    def fit(self, X, y=None) -> "GaussianMixture":
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)}, got {self.covariance_type!r}")
        X = np.asarray(X, dtype=np.float64)
        if len(X) < max(2, self.n_components):
            raise ValueError(f"a mixture of {self.n_components} components needs at least as many rows, got {len(X)}")
        # the initialisation scikit-learn's GaussianMixture uses: its KMeans(n_init=1), in NumPy (kmeans.py);
        # on more than init_sample rows, fitted on a seeded sample of them and every row given its nearest centre
        if self.init_sample is not None and len(X) > self.init_sample:
            rows = sample_rows(len(X), self.init_sample, self.random_state)
            labels = assign(X, kmeans(X[rows], self.n_components, self.random_state)[1])
        else:
            labels, _, _ = kmeans(X, self.n_components, self.random_state)
        resp = np.zeros((len(X), self.n_components))
        resp[np.arange(len(X)), labels] = 1
        # full covariances are fitted on centred rows (_m_step says why; means_ are centred too);
        # the others on the rows as given (center_ is 0), as scikit-learn does, without a copy of X
        self.center_ = X.mean(axis=0) if self.covariance_type == "full" else np.zeros(X.shape[1])
        X = X - self.center_ if self.covariance_type == "full" else X
        # the squares (diag) or products of column pairs (full) of X are the same at every EM step:
        # computed once (for diag no more memory than the temporary each step would make)
        pairs = _pair_products(X) if self.covariance_type == "full" else X * X if self.covariance_type == "diag" else None
        self._m_step(X, resp, pairs)
        self.weights_ /= len(X)  # scikit-learn's initialisation: counts over rows, not normalised nk
        lower_bound, self.converged_ = -np.inf, False
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            log_prob_norm, log_resp = self._log_prob_resp(X, pairs)
            self._m_step(X, np.exp(log_resp), pairs)
            self.weights_ /= self.weights_.sum()
            lower_bound = float(log_prob_norm.mean())
            if abs(lower_bound - previous) < self.tol:
                self.converged_ = True
                break
        self.n_iter_ = n_iter if self.max_iter > 0 else 0
        self.lower_bound_ = lower_bound
        return self

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row (int64)."""
        return self._weighted_log_prob(np.asarray(X, dtype=np.float64) - self.center_).argmax(axis=1)

    # ----------------------------------------------------------------- EM steps
    def _m_step(self, X: np.ndarray, resp: np.ndarray, pairs: np.ndarray | None = None) -> None:
        nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
        means = (resp.T @ X) / nk[:, None]
        if self.covariance_type in ("diag", "spherical"):
            squares = X * X if pairs is None else pairs
            covariances = (resp.T @ squares) / nk[:, None] - means**2 + self.reg_covar
            if self.covariance_type == "spherical":
                covariances = covariances.mean(axis=1)
            if np.any(~(covariances > 0)):
                raise ValueError("a component's covariance collapsed (not positive)")
            precisions_cholesky = 1.0 / np.sqrt(covariances)
        elif self.covariance_type == "tied":
            covariances = (X.T @ X - nk * means.T @ means) / nk.sum()
            covariances[np.arange(X.shape[1]), np.arange(X.shape[1])] += self.reg_covar
            precisions_cholesky = _precision_cholesky(covariances[None])[0]
        else:
            # sum_n resp_nk x_n x_n^T for every component in one product over the upper triangle
            # (X is centred in fit, so subtracting means x means^T loses no precision that matters)
            upper = np.triu_indices(X.shape[1])
            second = sum(resp[rows].T @ block for rows, block in _pair_blocks(X, pairs)) / nk[:, None]
            covariances = np.empty((len(nk), X.shape[1], X.shape[1]))
            covariances[:, upper[0], upper[1]] = second
            covariances[:, upper[1], upper[0]] = second
            covariances -= means[:, :, None] * means[:, None, :]
            covariances[:, np.arange(X.shape[1]), np.arange(X.shape[1])] += self.reg_covar
            precisions_cholesky = _precision_cholesky(covariances)
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = nk, means, covariances, precisions_cholesky

    def _weighted_log_prob(self, X: np.ndarray, pairs: np.ndarray | None = None) -> np.ndarray:
        """log P(x | component) + log weight, (rows, components)."""
        n_features = X.shape[1]
        if self.covariance_type == "diag":
            precisions = self.precisions_cholesky_**2
            squares = X**2 if pairs is None else pairs
            squared = (np.sum(self.means_**2 * precisions, axis=1) - 2.0 * (X @ (self.means_ * precisions).T)
                       + (squares @ precisions.T))
            log_det = np.sum(np.log(self.precisions_cholesky_), axis=1)
        elif self.covariance_type == "spherical":
            precisions = self.precisions_cholesky_**2
            squared = (np.sum(self.means_**2, axis=1) * precisions - 2 * (X @ self.means_.T * precisions)
                       + np.outer(np.einsum("nd,nd->n", X, X), precisions))
            log_det = n_features * np.log(self.precisions_cholesky_)
        elif self.covariance_type == "tied":  # one precision: ||x U - mean U||^2 expanded over the components
            shifted, shifted_means = X @ self.precisions_cholesky_, self.means_ @ self.precisions_cholesky_
            squared = (np.einsum("nd,nd->n", shifted, shifted)[:, None] - 2.0 * (shifted @ shifted_means.T)
                       + np.einsum("kd,kd->k", shifted_means, shifted_means))
            log_det = np.sum(np.log(np.diag(self.precisions_cholesky_)))
        else:
            # (x - mean)^T precision (x - mean), expanded so that all components take one product
            precisions = self.precisions_cholesky_ @ self.precisions_cholesky_.transpose(0, 2, 1)
            upper = np.triu_indices(n_features)
            twice_off_diagonal = np.where(upper[0] == upper[1], 1.0, 2.0)
            precision_times_mean = np.einsum("kde,ke->kd", precisions, self.means_)
            weights = (precisions[:, upper[0], upper[1]] * twice_off_diagonal).T
            squared = np.concatenate([block @ weights for _, block in _pair_blocks(X, pairs)])
            squared += np.einsum("kd,kd->k", self.means_, precision_times_mean) - 2.0 * (X @ precision_times_mean.T)
            log_det = np.log(np.diagonal(self.precisions_cholesky_, axis1=1, axis2=2)).sum(axis=1)
        return -0.5 * (n_features * math.log(2 * math.pi) + squared) + log_det + np.log(self.weights_)

    def _log_prob_resp(self, X: np.ndarray, pairs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        weighted = self._weighted_log_prob(X, pairs)
        top = weighted.max(axis=1, keepdims=True)
        with np.errstate(under="ignore"):
            log_prob_norm = np.log(np.exp(weighted - top).sum(axis=1)) + top[:, 0]
            return log_prob_norm, weighted - log_prob_norm[:, None]


def _precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """The upper-triangular U with U U^T = inverse of each (components, d, d) covariance, as
    scikit-learn's; ValueError when one is not finite or not positive definite."""
    if not np.all(np.isfinite(covariances)):
        raise ValueError("a component's covariance is not finite")
    try:
        cholesky = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError as error:
        raise ValueError("a component's covariance is not positive definite (collapsed or singleton component)") from error
    return np.linalg.inv(cholesky).transpose(0, 2, 1)


# products of column pairs held at once (float64: 32 MiB); a fit keeps them all when they fit in 4x that
_PAIR_BLOCK = 1 << 22


def sample_rows(n_rows: int, size: int, random_state) -> np.ndarray:
    """``size`` distinct row indices of ``n_rows``, drawn with ``random_state`` and sorted (sorted
    rows read an HDF5 dataset in order): the sample of every fit on a subset of rows."""
    return np.sort(np.random.default_rng(random_state).choice(n_rows, size=size, replace=False))


def _n_pairs(n_features: int) -> int:
    return n_features * (n_features + 1) // 2


def _pair_products(X: np.ndarray) -> np.ndarray | None:
    """x_i x_j for every row and every column pair i <= j (rows x d(d+1)/2), or None when that
    would exceed 4 x _PAIR_BLOCK elements (then _pair_blocks recomputes them block by block)."""
    if len(X) * _n_pairs(X.shape[1]) > 4 * _PAIR_BLOCK:
        return None
    return _products_of_pairs(X)


def _products_of_pairs(X: np.ndarray) -> np.ndarray:
    """x_i x_j for i <= j in np.triu_indices order, one column i against columns i.. at a time:
    the same products as ``X[:, upper[0]] * X[:, upper[1]]`` without its two gathered copies."""
    n_features = X.shape[1]
    products = np.empty((len(X), _n_pairs(n_features)))
    first = 0
    for i in range(n_features):
        np.multiply(X[:, i : i + 1], X[:, i:], out=products[:, first : first + n_features - i])
        first += n_features - i
    return products


def _pair_blocks(X: np.ndarray, pairs: np.ndarray | None):
    """(row slice, products of column pairs of those rows): ``pairs`` whole when given."""
    if pairs is not None:
        yield slice(0, len(X)), pairs
        return
    step = max(1, _PAIR_BLOCK // _n_pairs(X.shape[1]))
    for start in range(0, len(X), step):
        rows = slice(start, start + step)
        yield rows, _products_of_pairs(X[rows])
