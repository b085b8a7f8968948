"""deepuad.estimators.mixture: scikit-learn's GaussianMixture algorithm with all components at
once. It must give scikit-learn's labels (the panel's numbers were measured with scikit-learn's
class), in one pass or in row blocks, and fail the way scikit-learn's does on a collapsed
covariance, since clustering.fit_gmm retries on that error."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as ScikitLearnMixture

import deepuad.estimators.mixture as mixture
from deepuad.estimators.mixture import GaussianMixture


def modes(n=1500, d=6, seed=0):
    """Tight and loose Gaussian modes with correlated columns, far from the origin (the
    centring in fit must keep the E[xx^T] - mu mu^T covariance exact enough there)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(5, d)) + 50
    mixing = [rng.normal(size=(d, d)) * scale for scale in (0.01, 0.1, 0.5, 1.0, 2.0)]
    which = rng.integers(0, 5, size=n)
    return centres[which] + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), np.stack(mixing)[which])


def both(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**params).fit(X)
        theirs = ScikitLearnMixture(**params).fit(X)
    return ours, theirs


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_fit_and_labels_as_scikit_learn(covariance_type, seed):
    X = modes(seed=seed)
    ours, theirs = both(X, n_components=8, covariance_type=covariance_type, reg_covar=1e-6, random_state=seed)
    assert ours.n_iter_ == theirs.n_iter_ and ours.converged_ == theirs.converged_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-9)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ours.means_ + ours.center_, theirs.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-6, atol=1e-10)
    fresh = modes(n=4000, seed=seed + 10)  # rows the mixture never saw
    np.testing.assert_array_equal(ours.predict(fresh), theirs.predict(fresh))
    assert ours.predict(fresh).dtype == np.int64


def test_max_iter_and_tol_stop_as_in_scikit_learn():
    X = modes(seed=3)
    ours, theirs = both(X, n_components=6, covariance_type="full", max_iter=3, random_state=0)
    assert ours.n_iter_ == theirs.n_iter_ == 3 and not ours.converged_
    ours, theirs = both(X, n_components=6, covariance_type="full", tol=10.0, random_state=0)
    assert ours.n_iter_ == theirs.n_iter_ and ours.converged_
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_row_blocks_give_the_labels_of_one_pass(monkeypatch):
    X = modes(seed=4)
    whole = GaussianMixture(n_components=5, random_state=0).fit(X)
    monkeypatch.setattr(mixture, "_PAIR_BLOCK", 50)  # pair products recomputed in blocks of 2 rows
    assert mixture._pair_products(X) is None
    blocked = GaussianMixture(n_components=5, random_state=0).fit(X)
    assert blocked.n_iter_ == whole.n_iter_
    np.testing.assert_allclose(blocked.covariances_, whole.covariances_, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(blocked.predict(X), whole.predict(X))


def test_init_sample_runs_only_the_initial_k_means_on_a_sample(monkeypatch):
    """Large data: the k-means that starts EM sees ``init_sample`` rows, EM all of them; data no
    larger than the sample gets scikit-learn's initialisation unchanged."""
    from sklearn.metrics import adjusted_rand_score

    X = modes(n=3000, seed=6)
    seen = []
    real = mixture.kmeans
    monkeypatch.setattr(mixture, "kmeans", lambda rows, *args: seen.append(len(rows)) or real(rows, *args))
    whole = GaussianMixture(n_components=5, random_state=0, init_sample=3000).fit(X)
    plain = GaussianMixture(n_components=5, random_state=0).fit(X)
    np.testing.assert_array_equal(whole.means_, plain.means_)
    assert whole.n_iter_ == plain.n_iter_
    # five well-separated blobs: a start from 400 rows finds them, and EM's weights count all 3,000 rows
    rng = np.random.default_rng(7)
    which = rng.integers(0, 5, size=3000)
    blobs = rng.normal(size=(3000, 6)) + 12.0 * np.eye(6)[which]
    sampled = GaussianMixture(n_components=5, random_state=0, init_sample=400).fit(blobs)
    assert seen == [3000, 3000, 400]
    assert adjusted_rand_score(which, sampled.predict(blobs)) == 1.0
    np.testing.assert_allclose(np.sort(sampled.weights_), np.sort(np.bincount(which) / 3000), atol=1e-3)


def test_pair_products_are_the_upper_triangle_in_order(monkeypatch):
    """Both EM steps weight these columns by np.triu_indices positions: a column out of order
    would pair one covariance entry with another's product."""
    X = modes(n=40, d=5, seed=5)
    upper = np.triu_indices(5)
    np.testing.assert_array_equal(mixture._products_of_pairs(X), X[:, upper[0]] * X[:, upper[1]])
    monkeypatch.setattr(mixture, "_PAIR_BLOCK", 150)  # blocks of 10 rows
    blocks = [block for _, block in mixture._pair_blocks(X, None)]
    assert len(blocks) == 4
    np.testing.assert_array_equal(np.concatenate(blocks), X[:, upper[0]] * X[:, upper[1]])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_a_collapsed_covariance_fails_as_in_scikit_learn(covariance_type):
    """Rows that are copies of one point per component: zero covariance without a floor. Where
    scikit-learn's class raises ValueError, so does this one (fit_gmm retries on it)."""
    X = np.vstack([np.repeat(np.eye(4), 30, axis=0), np.eye(4)[[0, 1]] + 0.01])
    try:
        ScikitLearnMixture(n_components=4, covariance_type=covariance_type, reg_covar=0.0, random_state=0).fit(X)
        theirs = None
    except ValueError as error:
        theirs = error
    if theirs is None:
        GaussianMixture(n_components=4, covariance_type=covariance_type, reg_covar=0.0, random_state=0).fit(X)
    else:
        with pytest.raises(ValueError, match="collapsed|not positive definite|not finite"):
            GaussianMixture(n_components=4, covariance_type=covariance_type, reg_covar=0.0, random_state=0).fit(X)
    ours = GaussianMixture(n_components=4, covariance_type=covariance_type, reg_covar=1e-6, random_state=0).fit(X)
    assert len(np.unique(ours.predict(X))) == 4  # with a floor on the diagonal it fits


def test_full_covariance_collapse_is_refused():
    X = np.repeat(np.eye(4), 30, axis=0)
    with pytest.raises(ValueError, match="not positive definite"):
        GaussianMixture(n_components=4, covariance_type="full", reg_covar=0.0, random_state=0).fit(X)


def test_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="covariance_type must be one of full, tied, diag, spherical"):
        GaussianMixture(covariance_type="banana").fit(modes())
    with pytest.raises(ValueError, match="needs at least as many rows"):
        GaussianMixture(n_components=5).fit(modes()[:3])
