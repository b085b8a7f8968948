"""Evaluation metrics (only where ground truth exists; the algorithm never sees labels)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score


def ranking_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """AUROC and AUPRC (average precision), None when y holds one class only."""
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return {"auroc": None, "auprc": None}
    return {"auroc": float(roc_auc_score(y, scores)), "auprc": float(average_precision_score(y, scores))}


def binary_metrics(y: np.ndarray, scores: np.ndarray, is_anomaly: np.ndarray) -> dict[str, float | None]:
    """AUROC, AUPRC and precision / recall / F1 of the anomaly class at the chosen threshold."""
    metrics = ranking_metrics(y, scores)
    precision, recall, f1, _ = precision_recall_fscore_support(
        np.asarray(y).astype(int), np.asarray(is_anomaly).astype(int), average="binary", pos_label=1, zero_division=0
    )
    metrics.update(precision=float(precision), recall=float(recall), f1=float(f1))
    metrics["anomaly_share"] = float(np.mean(y))
    return metrics
