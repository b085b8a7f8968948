"""PNG figures for `deepuad evaluate --plots` (matplotlib, headless; an optional extra).

Each function takes plain arrays and a path, draws one figure and writes it; nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepuad.errors import UsageError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # headless: cron jobs and servers have no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plots needs matplotlib: pip install 'deepuad[plots]'") from None
    return plt


def _save(fig, path: Path) -> str:
    from deepuad.artifacts import write_file_atomically

    fig.tight_layout()
    try:
        write_file_atomically(path, lambda handle: fig.savefig(handle, dpi=120, format="png"))
    finally:
        _pyplot().close(fig)
    return str(path)


def roc_pr_curves(y: np.ndarray, scores: np.ndarray, folder: Path, label: str = "deepuad") -> list[str]:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    plt = _pyplot()
    written = []
    fpr, tpr, _ = roc_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"{label} (AUROC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    written.append(_save(fig, folder / "roc.png"))
    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(recall, precision, label=f"{label} (AUPRC {average_precision_score(y, scores):.3f})")
    ax.axhline(np.mean(y), ls=":", c="grey", label=f"chance ({np.mean(y):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    written.append(_save(fig, folder / "pr.png"))
    return written


def score_histogram(scores: np.ndarray, y: np.ndarray | None, threshold: float, folder: Path) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(scores, bins=60)
    if y is None:
        ax.hist(scores, bins=bins, color="C0", alpha=0.8, label="all rows")
    else:
        ax.hist(scores[y == 0], bins=bins, alpha=0.6, label="normal (y = 0)", density=True)
        ax.hist(scores[y == 1], bins=bins, alpha=0.6, label="anomaly (y = 1)", density=True)
    ax.axvline(threshold, c="k", ls="--", label=f"threshold {threshold:.4g}")
    ax.set(xlabel="score (higher = more anomalous)", ylabel="density" if y is not None else "rows", title="scores")
    ax.set_yscale("log")
    ax.legend()
    return _save(fig, folder / "score_histogram.png")


def iteration_curves(iterations: list[dict], folder: Path) -> str:
    """Paper Fig. 5: per re-selection, set size and changes, and metrics when labels exist."""
    plt = _pyplot()
    t = [row["iteration"] for row in iterations]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True)
    top.plot(t, [row["n_selected"] for row in iterations], "o-", label="selected")
    top.plot(t[1:], [row["n_changed"] for row in iterations[1:]], "s-", label="changed vs previous")
    top.set(ylabel="rows", title="training-set selection per iteration")
    top.legend()
    for key in ("auroc", "auprc", "f1"):
        values = [row.get(key) for row in iterations]
        if any(v is not None and np.isfinite(v) for v in values):
            bottom.plot(t, [np.nan if v is None else v for v in values], "o-", label=key.upper())
    from matplotlib.ticker import MaxNLocator

    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set(xlabel="iteration (0 = initial clustering)", ylabel="score on the training data", ylim=(0, 1.02))
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend()
    return _save(fig, folder / "iterations.png")


def video_scores(video: str, scores: np.ndarray, y: np.ndarray | None, folder: Path) -> str:
    """Paper Fig. 3: normalised score along a video's segments, annotated anomalies shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.8))
    span = scores.max() - scores.min()
    ax.plot((scores - scores.min()) / (span if span > 0 else 1), c="C0", label="score (normalised)")
    if y is not None:
        for start, stop in _runs(y):
            ax.axvspan(start - 0.5, stop - 0.5, color="C1", alpha=0.3, lw=0)
    ax.set(xlabel="segment", ylabel="score", title=f"{video}" + ("  (shaded: annotated anomaly)" if y is not None else ""), ylim=(0, 1.05))
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in video)[:150]  # names come from the data
    return _save(fig, folder / f"video_{safe}.png")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of ones."""
    padded = np.concatenate([[0], np.asarray(mask, int), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))
