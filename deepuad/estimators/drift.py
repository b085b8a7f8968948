"""Drift: how far the data being scored has moved from the data a model was trained on.

Per column of X, the population stability index (PSI) over bins learned from the training data:
PSI = sum over bins of (q - p) ln(q / p), p the training share of a bin and q today's. 0 means
the same distribution; by the usual reading under 0.1 is stable, 0.1-0.25 a moderate shift and
over 0.25 a shift worth acting on. A unit changed by 1,000 moves almost every row into the top
bin and gives a PSI of several units.

The columns are compared on the rows the model calls normal, then and now: the training rows
scoring at or below the model's own threshold (``cut``) against today's rows at or below the
same score. A bad night, many anomalous rows, leaves those rows where they were (the anomalies
are set aside by their scores) and so shows little drift, while its score distribution moves;
a stale model (a new unit, a new host, a new product) moves the normal rows themselves, and
most of them above the cut. So where fewer than half of today's counted rows are at or below the
cut (the flag rule flags at most half the training rows: more is data that moved, not a bad
night), or fewer than ``MIN_COMPARED`` of them, every counted row is compared: the few rows left
below the cut are then a biased sample (those the moved column happens not to reach), and
compared alone they would blame other columns. The score's own PSI compares all rows.

The reference is small and bounded whatever the training size: per column, ``N_BINS - 1`` bin
edges (quantiles of the training column) and ``N_BINS`` shares, learned on at most
``REFERENCE_ROWS`` evenly spaced training rows. The model file stores it (``train``), so a cron
job needs nothing but the model to measure drift. Today's rows are counted as they are scored,
every s-th row so that at most ``COUNT_ROWS`` are (one ``searchsorted`` per column and chunk):
a bounded cost, and a PSI whose sampling noise (about bins / rows) stays far below 0.1.

Pure NumPy: no files, no printing.
"""

from __future__ import annotations

import numpy as np

N_BINS = 10
REFERENCE_ROWS = 100_000
COUNT_ROWS = 100_000
MIN_COMPARED = 100
# a share below this counts as this much: an empty bin would make ln(q / p) infinite
FLOOR = 1e-4
# the usual PSI reading: the level nightly.sh and the report call a shift worth acting on
ACT_ABOVE = 0.25


def reference_rows(n_rows: int, at_most: int = REFERENCE_ROWS) -> np.ndarray:
    """Sorted indices of at most ``at_most`` rows spread evenly over ``n_rows``: deterministic,
    and the whole range (a file sorted by time is sampled over all of it)."""
    return np.unique(np.linspace(0, n_rows - 1, min(n_rows, at_most)).round().astype(np.int64))


def bin_edges(X: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """(columns, n_bins - 1) edges: the distinct inner quantiles of each column, the last one
    repeated where a column has fewer (its extra bins stay empty on both sides). A value goes to
    the first bin whose edge is >= it, so a column that is mostly 0 keeps its zeros in a bin of
    their own."""
    X = np.asarray(X, dtype=np.float64)
    inner = np.quantile(X, np.linspace(0, 1, n_bins + 1)[1:-1], axis=0).T
    edges = np.empty_like(inner)
    for column, values in enumerate(inner):
        distinct = np.unique(values)
        edges[column] = np.concatenate([distinct, np.repeat(distinct[-1], len(values) - len(distinct))])
    return edges


def bin_indices(X: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(columns, rows) bin of each value of ``X`` (rows, columns): column by column, each one
    contiguous."""
    columns = np.ascontiguousarray(np.asarray(X).T)
    bins = np.empty(columns.shape, dtype=np.uint8)
    for column, values in enumerate(columns):
        bins[column] = np.searchsorted(edges[column], values, side="left")
    return bins


def tally(bins: np.ndarray, n_bins: int) -> np.ndarray:
    """(columns, n_bins) row counts from ``bin_indices``."""
    counts = np.zeros((bins.shape[0], n_bins), dtype=np.int64)
    for column, row in enumerate(bins):
        counts[column] = np.bincount(row, minlength=n_bins)
    return counts


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return counts / np.maximum(total, 1)


def psi(reference: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """PSI of each row of ``counts`` (today's rows per bin) against the shares ``reference``."""
    p = np.maximum(reference, FLOOR)
    q = np.maximum(shares(counts), FLOOR)
    return np.sum((q - p) * np.log(q / p), axis=-1)


def fit_reference(X: np.ndarray, scores: np.ndarray, cut: float, n_bins: int = N_BINS) -> dict:
    """The reference of training rows ``X`` (a sample: see ``reference_rows``) and their
    ``scores``: bin edges and shares per column over the rows scoring at most ``cut`` (the
    model's threshold; all rows should none be), and of the score over all rows."""
    scores = np.asarray(scores, dtype=np.float64)
    normal = scores <= cut
    X = np.asarray(X)[normal] if normal.any() else np.asarray(X)
    edges = bin_edges(X, n_bins)
    score_edges = bin_edges(scores.reshape(-1, 1), n_bins)
    return {"edges": edges, "proportions": shares(tally(bin_indices(X, edges), n_bins)), "score_edges": score_edges[0],
            "score_proportions": shares(tally(bin_indices(scores.reshape(-1, 1), score_edges), n_bins))[0],
            "cut": float(cut)}


class DriftCounter:
    """Today's rows per bin, accumulated chunk by chunk (``add``) over every ``stride``-th of
    ``n_rows`` rows (at most ``at_most``), then compared with the reference (``result``)."""

    def __init__(self, reference: dict, n_rows: int, at_most: int = COUNT_ROWS):
        self.reference = reference
        self.stride = max(1, -(-n_rows // at_most))
        self.n_bins = reference["proportions"].shape[1]
        self.counts = np.zeros(reference["proportions"].shape, dtype=np.int64)  # every counted row
        self.normal_counts = np.zeros_like(self.counts)  # those scoring at most the cut
        self.rows = self.normal_rows = 0

    def add(self, X: np.ndarray, scores: np.ndarray, first_row: int) -> None:
        """Count the rows of chunk ``X`` (rows ``first_row``.. of the data, scored ``scores``)
        that fall on the stride."""
        on_stride = slice((-first_row) % self.stride, None, self.stride)
        bins = bin_indices(X[on_stride], self.reference["edges"])
        normal = np.asarray(scores)[on_stride] <= self.reference["cut"]
        counts = tally(bins, self.n_bins)
        self.counts += counts
        self.normal_counts += counts - tally(bins[:, ~normal], self.n_bins)  # the few rows above the cut
        self.rows += bins.shape[1]
        self.normal_rows += int(normal.sum())

    def result(self, scores: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """(PSI of each column, PSI of the score, whether the columns were compared on the rows
        scoring at most the cut rather than on every counted row)."""
        score_bins = bin_indices(np.asarray(scores).reshape(-1, 1), self.reference["score_edges"].reshape(1, -1))
        score_psi = float(psi(self.reference["score_proportions"], tally(score_bins, self.n_bins)[0]))
        on_normal = self.normal_rows >= min(MIN_COMPARED, max(1, self.rows // 2)) and 2 * self.normal_rows >= self.rows
        return psi(self.reference["proportions"], self.normal_counts if on_normal else self.counts), score_psi, on_normal


def by_column(column_psi: np.ndarray, groups: list[tuple[str, int, int]], feature_names: list[str]) -> list[dict]:
    """Per original column (``groups``: name, first, stop over X's columns; one-hot groups span
    several), its largest PSI and the encoded column that has it (``service=ecr_i``), highest
    first (ties: the earlier column)."""
    out = []
    for name, first, stop in groups:
        if stop <= first:
            continue
        at = first + int(np.argmax(column_psi[first:stop]))
        out.append({"column": name, "psi": float(column_psi[at]), "feature": feature_names[at]})
    return sorted(out, key=lambda entry: -entry["psi"])


def summary(counter: DriftCounter, scores: np.ndarray, groups: list[tuple[str, int, int]], feature_names: list[str],
            reference_rows: int, listed: int = 20) -> tuple[dict, np.ndarray]:
    """(the drift summary a scores file stores, the PSI per column of X): the largest PSI, the
    ``listed`` original columns that moved most (``by_column``), the score's PSI and which rows
    were compared."""
    column_psi, score_psi, on_normal = counter.result(scores)
    columns = by_column(column_psi, groups, feature_names)
    return {"measured": True, "measure": "psi", "bins": counter.n_bins, "reference_rows": int(reference_rows),
            "rows_counted": counter.rows, "rows_compared": counter.normal_rows if on_normal else counter.rows,
            "compared": "rows scoring at most the model's threshold" if on_normal else "all counted rows (fewer than half of them at most the model's threshold)",
            "cut": counter.reference["cut"], "max_psi": columns[0]["psi"] if columns else 0.0, "score_psi": score_psi,
            "act_above": ACT_ABOVE, "columns": columns[:listed]}, column_psi
