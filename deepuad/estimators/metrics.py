"""Evaluation metrics (only where ground truth exists; the algorithm never sees labels).

Computed directly rather than with scikit-learn so that scoring ten million rows stays within
a bounded memory budget: one argsort plus a few int32/float32 arrays (scikit-learn's
roc_auc_score and average_precision_score each copy the data to float64/int64 several times).
Both agree with scikit-learn to 1e-9 (tests/test_estimators_metrics.py).
"""

from __future__ import annotations

import numpy as np


def ranking_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """AUROC and AUPRC (average precision, as scikit-learn defines it); None with one class."""
    y = np.asarray(y)
    n_pos = int(np.count_nonzero(y))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return {"auroc": None, "auprc": None}
    order = np.argsort(-np.asarray(scores), kind="stable")
    sorted_scores = np.asarray(scores)[order]
    tps = np.cumsum(y[order] != 0, dtype=np.int64 if len(y) >= 2**31 else np.int32)
    del order
    # the last position of each run of equal scores: one ROC/PR point per distinct threshold
    ends = np.flatnonzero(np.diff(sorted_scores))
    del sorted_scores
    ends = np.append(ends, len(y) - 1)
    tp = tps[ends].astype(np.float64)
    fp = (ends + 1) - tp
    del tps
    tpr, fpr = tp / n_pos, fp / n_neg
    auroc = float(np.trapezoid(np.r_[0.0, tpr], np.r_[0.0, fpr]))
    precision = tp / (tp + fp)
    auprc = float(np.sum(np.diff(np.r_[0.0, tpr]) * precision))
    return {"auroc": auroc, "auprc": auprc}


def binary_metrics(y: np.ndarray, scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float | None]:
    """AUROC, AUPRC and precision / recall / F1 of the anomaly class at the chosen threshold."""
    metrics = ranking_metrics(y, scores)
    truth, flagged = np.asarray(y) != 0, np.asarray(is_anomaly) != 0
    tp = int(np.count_nonzero(truth & flagged))
    precision = tp / max(int(np.count_nonzero(flagged)), 1)
    recall = tp / max(int(np.count_nonzero(truth)), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    metrics.update(precision=float(precision), recall=float(recall), f1=float(f1), anomaly_share=float(np.mean(truth)))
    return metrics
