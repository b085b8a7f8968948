"""deepuad.estimators.clustering: the GMM behind the initial selection and the re-selection (seeds, fitting
on a subsample, the covariance floor's retries) and the method registry's option handling."""

import warnings

import numpy as np
import pytest

import deepuad.estimators.clustering as clustering
from deepuad.estimators.clustering import _subsample, cluster_labels, fit_gmm, gmm_labels


def blobs(n_per=60, seed=0):
    rng = np.random.default_rng(seed)
    return np.vstack([centre + 0.1 * rng.normal(size=(n_per, 2)) for centre in ([0, 0], [5, 0], [0, 5])])


def test_subsample_is_seeded_sorted_and_without_repeats():
    X = np.arange(100.0)[:, None]
    rows = _subsample(X, 30, random_state=4)[:, 0]
    assert len(rows) == 30 and len(np.unique(rows)) == 30 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(_subsample(X, 30, random_state=4)[:, 0], rows)
    assert not np.array_equal(_subsample(X, 30, random_state=5)[:, 0], rows)
    assert _subsample(X, None, 0) is X and _subsample(X, 100, 0) is X  # nothing to sample


class RecordingGMM(clustering.GaussianMixture):
    """Records what every fit was given; fails the first ``fail`` fits like a collapsed covariance."""

    fits: list = []
    fail = 0

    def fit(self, X, y=None):
        RecordingGMM.fits.append({"rows": len(X), "reg_covar": self.reg_covar, "random_state": self.random_state,
                                  "covariance_type": self.covariance_type, "max_iter": self.max_iter})
        if len(RecordingGMM.fits) <= RecordingGMM.fail:
            raise ValueError(f"ill-defined empirical covariance (attempt {len(RecordingGMM.fits)})")
        return super().fit(X, y)


@pytest.fixture
def recording(monkeypatch):
    RecordingGMM.fits, RecordingGMM.fail = [], 0
    monkeypatch.setattr(clustering, "GaussianMixture", RecordingGMM)
    return RecordingGMM


def test_gmm_fits_on_the_subsample_and_labels_every_row(recording):
    X = blobs()
    labels = gmm_labels(X, 3, random_state=2, covariance_type="diag", reg_covar=1e-5, fit_sample=50)
    assert recording.fits == [{"rows": 50, "reg_covar": 1e-5, "random_state": 2, "covariance_type": "diag", "max_iter": 100}]
    assert labels.dtype == np.int64 and labels.shape == (180,)
    assert len(np.unique(labels[:60])) == len(np.unique(labels[60:120])) == len(np.unique(labels[120:])) == 1
    assert len(np.unique(labels)) == 3
    noise = np.random.default_rng(1).normal(size=(300, 2))  # no structure: the subsample decides the fit
    first = gmm_labels(noise, 4, random_state=2, fit_sample=40)
    np.testing.assert_array_equal(gmm_labels(noise, 4, random_state=2, fit_sample=40), first)


def test_gmm_retries_with_a_ten_times_larger_covariance_floor(recording):
    recording.fail = 3
    fit_gmm(blobs(), 3, random_state=0, reg_covar=1e-6, max_iter=7)
    assert [fit["reg_covar"] for fit in recording.fits] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3])
    assert {fit["random_state"] for fit in recording.fits} == {0} and {fit["max_iter"] for fit in recording.fits} == {7}
    recording.fits, recording.fail = [], 4
    with pytest.raises(ValueError, match=r"GMM failed even with reg_covar=0\.001: ill-defined empirical covariance \(attempt 4\)"):
        fit_gmm(blobs(), 3, random_state=0, reg_covar=1e-6)
    assert len(recording.fits) == 4


def test_gmm_hides_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        fit_gmm(np.random.default_rng(0).normal(size=(200, 2)), 5, random_state=0, max_iter=1)


def test_gmm_labels_in_chunks_match_one_pass(monkeypatch):
    X = blobs()
    whole = gmm_labels(X, 3, random_state=0)
    monkeypatch.setattr(clustering, "_PREDICT_CHUNK", 7)
    np.testing.assert_array_equal(gmm_labels(X, 3, random_state=0), whole)


def test_registry_passes_only_the_accepted_options_and_the_seed(monkeypatch):
    seen = {}

    def method(X, n_clusters=None, random_state=0, alpha=None, beta=None):
        seen.update(n_clusters=n_clusters, random_state=random_state, alpha=alpha, beta=beta)
        return np.array([0.0, 1.0, 1.0]), {"spread": 1}

    monkeypatch.setitem(clustering.METHODS, "spy", (method, ("alpha", "beta"), "test"))
    labels, extra = cluster_labels("spy", np.zeros((3, 1)), 4, 9, alpha=2, beta=None, gamma=3)
    assert seen == {"n_clusters": 4, "random_state": 9, "alpha": 2, "beta": None}  # gamma not accepted, None left out
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 1] and extra == {"spread": 1}
    monkeypatch.setitem(clustering.METHODS, "plain", (lambda X, n_clusters=None, random_state=0: np.zeros(3), (), "test"))
    assert cluster_labels("plain", np.zeros((3, 1)), 2, 0)[1] == {}
    with pytest.raises(ValueError, match="unknown clustering method 'magic'; choose from gmm, kmeans"):
        cluster_labels("magic", np.zeros((3, 1)), 2, 0)
