"""The cleaning rule ``trim``: keep the rows that do not stand out, however many anomalies there are.

The paper keeps the low-variance clusters that cover (100 - p) % of the rows, a fixed share: with a
0.5 % anomaly share it drops whole normal modes, with 25 % it keeps anomalies. ``trim`` lets the data
say how many rows to drop. Every row gets an outlyingness (how far it is from the rows kept so far,
as a robust z-score), and a row is kept when its outlyingness is at most ``cutoff`` interquartile
ranges above the upper quartile over all rows (Tukey's fence; 1.5 is Tukey's). With
``cluster_cutoff``, the clusters of the paper's clustering are judged too: a cluster whose median
outlyingness lies more than ``cluster_cutoff`` interquartile ranges above the upper quartile is dropped whole (a tight group of
anomalies, each unremarkable among its neighbours, stands out as a group). At least ``min_share``
of the rows are always kept (the least outlying ones), so a rule can never keep the anomalies
because it dropped too much.

Before any network exists, the outlyingness of a row (``initial_outlyingness``) is the mean of two
robust z-scores: the log distance to its 5 nearest rows among a seeded sample of all rows (local
anomalies), and the log of its largest per-column deviation from the column's median, in IQRs (at least a tenth
of the column's range)
(rows far out in one column, and tight groups far from the bulk, which nearest neighbours miss).

``tails_trim`` cleans the *reference* (the sample of all rows the k-NN and tails parts measure
against) the same way: a row whose tails value (parts.Tails fitted on the reference itself) lies
beyond the fence is left out. A group of anomalies that is many and alike (clustered anomalies at
20 %) is each other's nearest neighbours and widens every column's distribution over itself; left
in the reference, it hides itself from both parts.
"""

from __future__ import annotations

import math

import numpy as np

from deepuad.estimators import scoring
from deepuad.estimators.parts import Tails

SAMPLE_ROWS = 2000  # reference rows for the initial outlyingness (as DeepUAD's reference_size)


def robust_z(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(values - median) / spread of ``reference`` (scoring.robust_scale)."""
    center, spread = scoring.robust_scale(reference)
    return (np.asarray(values, dtype=np.float64) - center) / spread


def initial_outlyingness(X: np.ndarray, seed: int, sample_rows: int = SAMPLE_ROWS) -> np.ndarray:
    """Each row's outlyingness among all rows, with no network yet (see the module docstring)."""
    X = np.asarray(X, dtype=np.float32)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(X)) if len(X) <= sample_rows else np.sort(rng.choice(len(X), sample_rows, replace=False))
    sample = X[rows]
    neighbours = np.log(scoring.knn_distances(sample, X, 5) + 1e-12)
    q1, median, q3 = np.percentile(sample.astype(np.float64), [25, 50, 75], axis=0)
    spread = np.maximum(q3 - q1, 0.1 * (sample.max(axis=0).astype(np.float64) - sample.min(axis=0)))
    spread = np.where(spread > 1e-12, spread, 1.0)  # a constant column
    deviation = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), 16384):
        x = X[start : start + 16384].astype(np.float64)
        deviation[start : start + len(x)] = (np.abs(x - median) / spread).max(axis=1)
    deviation = np.log(deviation + 1e-12)
    return (robust_z(neighbours, neighbours[rows]) + robust_z(deviation, deviation[rows])) / 2.0


def trim(outlyingness: np.ndarray, cutoff: float, kept: np.ndarray, labels: np.ndarray | None = None,
         cluster_cutoff: float | None = None, min_share: float = 0.5) -> tuple[np.ndarray, float]:
    """(sorted indices of the rows kept, the outlyingness threshold applied): the fence is taken over
    the outlyingness of the rows ``kept`` so far; see the module docstring."""
    outlyingness = np.asarray(outlyingness, dtype=np.float64)
    fenced = outlyingness[np.asarray(kept, dtype=np.int64)]
    # Tukey's fence: the upper quartile plus ``cutoff`` spreads. A fence on the upper quartile, not on the
    # median, holds where many rows share one low value (most rows of KDDCUP are copies of a few
    # connections, whose nearest neighbours are at distance 0); the spread is scoring.robust_scale's
    upper = float(np.percentile(fenced, 75))
    _, spread = scoring.robust_scale(fenced)
    threshold = upper + cutoff * spread
    keep = outlyingness <= threshold
    if cluster_cutoff is not None and labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        clustered = labels >= 0
        if clustered.any():
            n_clusters = int(labels.max()) + 1
            order = np.argsort(labels[clustered], kind="stable")
            grouped = outlyingness[clustered][order]
            sizes = np.bincount(labels[clustered], minlength=n_clusters)
            starts = np.cumsum(sizes) - sizes
            medians = np.array([np.median(grouped[s : s + n]) if n else -np.inf for s, n in zip(starts, sizes)])
            keep &= ~(clustered & (medians[np.maximum(labels, 0)] > upper + cluster_cutoff * spread))
    least = math.ceil(min_share * len(outlyingness))
    if keep.sum() < least:  # keep the least outlying rows instead
        threshold = float(np.partition(outlyingness, least - 1)[least - 1])
        keep = outlyingness <= threshold
    return np.flatnonzero(keep).astype(np.int64), float(threshold)


def tails_fence(values: np.ndarray, cutoff: float) -> float:
    """The most a kept row's tails value may be: ``cutoff`` (>= 0) interquartile ranges above the upper
    quartile of ``values`` (Tukey's fence). It lies at or above that quartile, so it keeps at least
    three rows in four: no floor is needed, as ``trim``'s fence, drawn over another set of rows, needs one.

    The plain interquartile range, not ``trim``'s spread: where it is 0 (most rows alike) the fence is
    the upper quartile."""
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 + cutoff * (q3 - q1))


def tails_trim(reference: np.ndarray, cutoff: float) -> np.ndarray:
    """Which rows of ``reference`` to keep (a boolean mask): those whose tails value, fitted on the
    reference itself, lies within ``tails_fence``; see the module docstring."""
    values = Tails().fit(reference, 0).values(reference, {})
    return values <= tails_fence(values, cutoff)
