"""The rules that choose the training set (rules.py): what each registered rule keeps, and that a
new rule is one class and one registration line, here in the test alone."""

from __future__ import annotations

import numpy as np
import pytest

from deepuad import DeepUAD
from deepuad.estimators import rules
from deepuad.estimators.selection import Selection, initial_selection

SMALL = dict(p0=30, p=20, r=2, epochs=4, batch_size=32, layers=(4, 2), init_clusters=4, tol=0.0, seed=0)


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(180, 6)), rng.uniform(-6, 6, size=(20, 6))]).astype(np.float32)


def choose(name: str, detector: DeepUAD, codes, errors, seed=(0, 1)) -> rules.Choice:
    """What the registered re-selection rule ``name`` chooses from every row's codes and errors."""
    errors = np.asarray(errors, dtype=np.float32)
    codes = None if codes is None else np.asarray(codes, dtype=np.float32)
    return rules.RESELECT[name]().choose(detector, None, errors, codes, list(seed))


# ----------------------------------------------------------------------------- registering a rule
def test_a_new_reselection_rule_needs_one_class_and_one_registration(X, monkeypatch):
    class FirstHalf(rules.Rule):
        """Keeps the first half of the rows, whatever the network says."""

        name = "first_half"

        def choose(self, detector, X, errors, codes, seed):
            return rules.Choice(np.arange(len(X) // 2), threshold=0.5, scores=errors)

    monkeypatch.setitem(rules.RESELECT, "first_half", FirstHalf)
    seen = []
    det = DeepUAD(reselect_by="first_half", score="distance", **SMALL).fit(
        X, callback=lambda event, det, info: seen.append(info["scores"]) if event == "reselect" else None)
    assert len(det.iterations_) == 3  # the first re-selection changes the set, the second does not: converged
    np.testing.assert_array_equal(det.selected_, np.arange(100))
    assert det.iterations_[-1].threshold == 0.5 and det.stop_reason_ == "converged"
    assert len(seen) == 2 and seen[0].shape == (200,)  # the errors it was handed, as a callback sees them
    assert not np.array_equal(det.iterations_[0].selected, np.arange(100))


def test_an_unregistered_rule_is_refused_naming_the_registered_ones(X):
    with pytest.raises(ValueError, match="reselect_by.*error, variance, trim"):
        DeepUAD(reselect_by="first_half", **SMALL).fit(X)
    with pytest.raises(ValueError, match="init_by.*variance, trim"):
        DeepUAD(init_by="everything", **SMALL).fit(X)


def test_a_new_initial_rule_needs_one_class_and_one_registration(X, monkeypatch):
    class Everything(rules.InitialRule):
        name = "everything"

        def choose(self, X, clustered, params):
            assert params.p0 == 30 and params.seed == 0  # DeepUAD's parameters, by name
            return Selection(clustered.labels, clustered.sizes, clustered.variances, np.inf,
                                   np.ones(len(clustered.sizes), bool), np.arange(len(X)), False)

    monkeypatch.setitem(rules.INITIAL, "everything", Everything)
    det = DeepUAD(init_by="everything", **{**SMALL, "epochs": 0}).fit(X)
    np.testing.assert_array_equal(det.iterations_[0].selected, np.arange(200))
    paper = initial_selection(X, p0=30, init_method="gmm", init_clusters=4, seed=0)
    assert len(paper.selected) < 200  # the paper's rule leaves rows out


# ----------------------------------------------------------------------------- the paper's rule: a GMM on z
def test_variance_reselection_clusters_the_codes_together_with_the_error():
    # Two groups with the same codes; only the error column tells them apart: one tight, one spread.
    rng = np.random.default_rng(0)
    codes = 0.1 * rng.normal(size=(400, 2))
    errors = np.r_[0.01 + 0.001 * rng.normal(size=200), rng.uniform(0.5, 1.5, size=200)]
    det = DeepUAD(p0=80, p=50, reselect_clusters=2, reselect_fit_sample=None, percentile_over="samples", min_fraction=0.01)
    chosen = choose("variance", det, codes, errors)
    np.testing.assert_array_equal(chosen.selected, np.arange(200))
    np.testing.assert_array_equal(chosen.scores, errors.astype(np.float32))  # what a callback sees: the errors


def test_variance_reselection_covers_100_minus_p_percent_not_100_minus_p0():
    # Five separated clusters of 80 rows in z, spreads increasing; p = 30 keeps clusters until 70 %
    # of the rows are covered (4 clusters, 80 %); p0 = 70 would keep 2.
    rng = np.random.default_rng(0)
    centres = 10.0 * np.eye(3)[[0, 1, 2, 0, 1]] * np.array([1, 1, 1, -1, -1])[:, None]
    spreads = np.array([0.01, 0.02, 0.04, 0.08, 0.16])
    z = np.vstack([centre + spread * rng.normal(size=(80, 3)) for centre, spread in zip(centres, spreads)])
    det = DeepUAD(p0=70, p=30, reselect_clusters=5, reselect_fit_sample=None, percentile_over="samples", min_fraction=0.01)
    np.testing.assert_array_equal(choose("variance", det, z[:, :2], z[:, 2]).selected, np.arange(320))


def test_variance_reselection_applies_min_fraction():
    rng = np.random.default_rng(0)
    z = np.vstack([0.01 * rng.normal(size=(10, 3)), 5 + rng.normal(size=(190, 3))])  # a tight 5 %, a loose 95 %
    det = DeepUAD(p=99, reselect_clusters=2, reselect_fit_sample=None, percentile_over="samples", min_fraction=0.5)
    chosen = choose("variance", det, z[:, :2], z[:, 2])
    assert len(chosen.selected) == 200 and chosen.fallback  # p = 99 keeps the tight 10 rows; min_fraction asks for 100


def test_variance_reselection_seeds_its_gmm_from_the_reselection_s_seed_and_passes_its_parameters(monkeypatch):
    import deepuad.estimators.clustering as clustering

    seen = []
    original = clustering.gmm_labels  # rules imports it from clustering when it clusters (lazily)

    def spy(z, n_clusters, random_state, covariance_type, reg_covar, fit_sample=None):
        seen.append((z.shape, n_clusters, random_state, covariance_type, reg_covar, fit_sample))
        return original(z, n_clusters, random_state, covariance_type, reg_covar, fit_sample=fit_sample)

    monkeypatch.setattr(clustering, "gmm_labels", spy)
    rng = np.random.default_rng(0)
    codes, errors = rng.normal(size=(300, 2)), rng.uniform(size=300)
    det = DeepUAD(reselect_clusters=3, reselect_fit_sample=120, percentile_over="samples", min_fraction=0.01)
    for seed in ((5, 1), (5, 1), (5, 2), (6, 1)):
        choose("variance", det, codes, errors, seed)
    assert [s[:2] for s in seen] == [((300, 3), 3)] * 4 and all(s[3:] == ("full", 1e-6, 120) for s in seen)
    seeds = [s[2] for s in seen]
    assert all(isinstance(seed, int) for seed in seeds)
    # reproducible, another GMM seed per re-selection, and the detector's seed matters
    assert seeds[0] == seeds[1] and len({seeds[0], seeds[2], seeds[3]}) == 3


# ----------------------------------------------------------------------------- the error percentile
def test_error_reselection_uses_p_and_keeps_ties_at_the_threshold():
    errors = np.r_[np.linspace(0.0, 1.0, 90), np.full(10, 2.0)]
    np.testing.assert_array_equal(choose("error", DeepUAD(p0=50, p=10), None, errors).selected, np.arange(90))
    # every row at the percentile is kept (<=): 30 equal errors at the 80th percentile
    errors = np.r_[np.linspace(0.0, 0.5, 60), np.full(30, 0.7), np.linspace(1.0, 2.0, 10)]
    np.testing.assert_array_equal(choose("error", DeepUAD(p0=50, p=20), None, errors).selected, np.arange(90))


def test_error_reselection_records_its_threshold():
    chosen = choose("error", DeepUAD(p=25), None, np.linspace(0.0, 1.0, 101))
    assert chosen.threshold == pytest.approx(0.75) and chosen.fallback is False
    np.testing.assert_array_equal(chosen.selected, np.arange(76))


# ----------------------------------------------------------------------------- trim
def test_trim_reselection_measures_every_row_itself_and_keeps_the_rows_within_the_fence(X):
    seen = []
    det = DeepUAD(reselect_by="trim", score="distance", **{**SMALL, "epochs": 2}).fit(
        X, callback=lambda event, det, info: seen.append(info["scores"]) if event == "reselect" else None)
    assert rules.RESELECT["trim"].needs == ()  # nothing encoded for it: it scores the rows with the network itself
    (outlyingness,) = seen
    kept = det.iterations_[1]
    np.testing.assert_array_equal(kept.selected, np.flatnonzero(outlyingness <= kept.threshold))
    assert (np.flatnonzero(outlyingness > kept.threshold) >= 180).mean() > 0.5  # mostly the scattered rows left out
