"""The rules that choose Algorithm 1's training set, by name: ``INITIAL`` (``init_by``: the first
training set, from the initial clustering) and ``RESELECT`` (``reselect_by``: every r epochs, from
ALL rows, with the network as it is then).

A re-selection rule is a class with a ``name``, the measurements it ``needs`` of every row, and
``choose(detector, X, errors, codes, seed) -> Choice``:

* ``detector``: the DeepUAD being fitted: its parameters (``p``, ``trim_cutoff``, ...), its current
  training set ``selected_`` and its network ``model_`` on ``device``;
* ``X``: every row (under torchrun rank 0 chooses, reading them all);
* ``errors``, ``codes``: every row's cosine error h(x) and bottleneck code, where ``needs`` names
  them (None otherwise: a rule that needs neither measures the rows itself);
* ``seed``: this re-selection's seed, ``[detector.seed, the re-selection's number]``, for
  ``np.random.default_rng``: the same fit draws the same numbers, each re-selection others.

It returns a ``Choice``: the new training set (row indices), the threshold it applied, whether a
guard had to add rows (``fallback``), and each row's value under the rule (``scores``: what a
callback sees). The loop (``DeepUAD._train``) makes that the training set, and stops when it no
longer changes.

An initial rule is a class with a ``name`` and ``choose(X, clustered, params) -> Selection``: from
the paper's selection ``clustered`` (the low-variance clusters of the initial clustering, C(X, p0),
selection.py) and DeepUAD's parameters ``params`` (as attributes: ``trim_cutoff``, ``seed``, ...).

Registering a rule is one line in ``RESELECT`` or ``INITIAL``; ``reselect_by`` and ``init_by``
take every registered name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepuad.estimators import cleaning
from deepuad.estimators.params import SCORE_BATCH_ROWS
from deepuad.estimators.parts import reference_rows
from deepuad.estimators.scorer import Scorer
from deepuad.estimators.selection import Selection, select


@dataclass
class Choice:
    """What a re-selection rule chose."""

    selected: np.ndarray  # indices of the rows of the new training set
    threshold: float = float("nan")  # the cut-off the rule applied
    fallback: bool = False  # a guard had to add rows
    scores: np.ndarray | None = None  # each row's value under the rule (None: the rule measured none)


class Rule:
    """A re-selection rule (see the module docstring)."""

    name = ""
    needs: tuple[str, ...] = ("errors",)

    def choose(self, detector, X, errors: np.ndarray | None, codes: np.ndarray | None, seed: list[int]) -> Choice:
        raise NotImplementedError  # pragma: no cover - abstract


class LowErrors(Rule):
    """The rows whose reconstruction error is at most the (100 - p)th percentile of all rows' errors.
    It cannot win back a normal mode that the initial clustering left out: such a mode may
    reconstruct worse than the anomalies, and the rule then keeps anomalies first."""

    name = "error"

    def choose(self, detector, X, errors, codes, seed):
        threshold = float(np.quantile(errors, 1 - detector.p / 100))
        return Choice(np.flatnonzero(errors <= threshold).astype(np.int64), threshold, False, errors)


class LowVarianceClusters(Rule):
    """The paper's: the clusters of a GMM on z = [code; error] (``gmm_of_z``), keeping the
    low-variance ones that cover (100 - p) % of the rows (selection.select). A normal mode the
    initial clustering left out is a tight cluster in z even though its error is high: this rule
    grows the training set back over it."""

    name = "variance"
    needs = ("errors", "codes")

    def choose(self, detector, X, errors, codes, seed):
        z, labels = gmm_of_z(detector, codes, errors, seed)
        chosen = select(z, labels, detector.p, over=detector.percentile_over, min_fraction=detector.min_fraction)
        return Choice(chosen.selected, chosen.threshold, chosen.fallback, errors)


class Trim(Rule):
    """cleaning.py's ``trim``: a row's outlyingness is its score under the current network (the
    plain mean of the parts), with the score's parts fitted on a seeded sample of the current
    training set; the rows within the fence of the training set's own outlyingness are kept, so the
    kept share follows the data. With ``cluster_cutoff`` the clusters are the paper's, a GMM on
    z = [code; error], and a cluster that stands out whole is dropped."""

    name = "trim"
    needs = ()  # it scores every row itself

    def choose(self, detector, X, errors, codes, seed):
        rows = reference_rows(np.random.default_rng(seed), detector.selected_, detector.reference_size)
        scorer = Scorer.fit(detector.score, X, rows, detector.seed, detector.n_neighbors, detector.model_, detector.device)
        clustered = detector.cluster_cutoff is not None  # the clusters need every row's code and error
        values, codes, cosines = [], [], []
        for start in range(0, len(X), SCORE_BATCH_ROWS):
            block = np.ascontiguousarray(X[start : start + SCORE_BATCH_ROWS], dtype=np.float32)
            block_values, block_codes, block_cosines = scorer.values(block, detector.model_, detector.device,
                                                                     with_codes=clustered)
            values.append(block_values)
            codes.append(block_codes)
            cosines.append(block_cosines)
        outlyingness = scorer.combined([np.concatenate(column) for column in zip(*values)], weighted=False)
        labels = gmm_of_z(detector, np.concatenate(codes), np.concatenate(cosines), seed)[1] if clustered else None
        selected, threshold = cleaning.trim(outlyingness, detector.trim_cutoff, detector.selected_, labels,
                                            detector.cluster_cutoff)
        return Choice(selected, threshold, False, outlyingness)


def gmm_of_z(detector, codes: np.ndarray, errors: np.ndarray, seed: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(z = [code; error], the paper's GMM clusters of z) of all rows: ``reselect_clusters``
    components with full covariances, fitted on ``reselect_fit_sample`` random rows, every row assigned."""
    from deepuad.estimators.clustering import gmm_labels  # imported only when a rule clusters

    z = np.concatenate([codes, errors[:, None]], axis=1).astype(np.float64)
    gmm_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
    return z, gmm_labels(z, detector.reselect_clusters, gmm_seed, "full", 1e-6, fit_sample=detector.reselect_fit_sample)


class InitialRule:
    """An initial rule (see the module docstring)."""

    name = ""

    def choose(self, X: np.ndarray, clustered: Selection, params) -> Selection:
        raise NotImplementedError  # pragma: no cover - abstract


class LowVarianceStart(InitialRule):
    """The paper's: the low-variance clusters that cover (100 - p0) % of the rows, as chosen."""

    name = "variance"

    def choose(self, X, clustered, params):
        return clustered


class TrimStart(InitialRule):
    """cleaning.py's ``trim`` before any network: the rows whose initial outlyingness lies within the
    fence of the paper's selection, and with ``cluster_cutoff`` outside the clusters that stand out
    whole. Rows the paper's rule left out come back when they look like the rows it kept; rows it
    kept leave when they stand out. A cluster counts as accepted when it keeps any row."""

    name = "trim"

    def choose(self, X, clustered, params):
        outlyingness = cleaning.initial_outlyingness(X, params.seed)
        selected, threshold = cleaning.trim(outlyingness, params.trim_cutoff, clustered.selected, clustered.labels,
                                            params.cluster_cutoff)
        kept_labels = clustered.labels[selected]
        accepted = np.bincount(kept_labels[kept_labels >= 0], minlength=len(clustered.sizes)) > 0
        return Selection(clustered.labels, clustered.sizes, clustered.variances, threshold, accepted, selected, False,
                         clustered.extra)


# every rule by name; adding a rule is a class above and one line here
RESELECT: dict[str, type[Rule]] = {rule.name: rule for rule in (LowErrors, LowVarianceClusters, Trim)}
INITIAL: dict[str, type[InitialRule]] = {rule.name: rule for rule in (LowVarianceStart, TrimStart)}
