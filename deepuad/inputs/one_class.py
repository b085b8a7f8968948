"""``one_class_task``: the usual "one class is normal, a few samples of the others are anomalies"
task, built from any labelled set (MNIST digits, image folders' classes)."""

from __future__ import annotations

import math

import numpy as np

from deepuad.errors import ParamError

__all__ = ["one_class_task"]


def one_class_task(class_label, normal_class, anomaly_ratio: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All samples of ``normal_class`` plus a few of every other class as anomalies.

    The anomalies are spread as evenly as the class counts allow over the other classes,
    and their number is round(n_normal * ratio / (1 - ratio)) so they make up
    ``anomaly_ratio`` of the result (MNIST digit 4: 982 fours at 0.05 -> 52 others).
    Returns the sorted row ``indices`` (int64) and ``y`` (int8, 1 = anomaly) aligned with
    them; the same ``seed`` gives the same task. A string ``normal_class`` (e.g. "4" from
    the command line) is compared with the labels as strings.
    """
    labels = np.asarray(class_label)
    if labels.ndim != 1:
        raise ValueError(f"class_label must be 1-D, got shape {labels.shape}")
    if not 0.0 < anomaly_ratio < 1.0:
        raise ParamError("anomaly_ratio", f"must be in (0, 1), got {anomaly_ratio}")
    if isinstance(normal_class, str) or labels.dtype.kind in "USO":
        labels, normal_class = labels.astype(str), str(normal_class)
    is_normal = labels == normal_class
    n_normal = int(is_normal.sum())
    if n_normal == 0:
        present = ", ".join(map(str, np.unique(labels)[:20]))
        raise ParamError("normal_class", f"{normal_class!r} does not occur; classes: {present}")

    n_anomalies = int(math.floor(n_normal * anomaly_ratio / (1.0 - anomaly_ratio) + 0.5))
    n_available = len(labels) - n_normal
    if n_anomalies == 0:
        raise ParamError("anomaly_ratio", f"{anomaly_ratio} gives no anomalies for {n_normal} normal samples")
    if n_anomalies > n_available:
        raise ParamError("anomaly_ratio", f"{anomaly_ratio} needs {n_anomalies} anomalies but only {n_available} "
                         "samples are of other classes")

    rng = np.random.default_rng(seed)
    other_classes, capacity = np.unique(labels[~is_normal], return_counts=True)
    taken = _spread_evenly(n_anomalies, capacity, rng)
    anomaly_indices = [
        rng.choice(np.flatnonzero(labels == cls), size=int(k), replace=False)
        for cls, k in zip(other_classes, taken) if k > 0
    ]
    indices = np.concatenate([np.flatnonzero(is_normal)] + anomaly_indices).astype(np.int64)
    order = np.argsort(indices, kind="stable")
    y = np.concatenate([np.zeros(n_normal, np.int8), np.ones(n_anomalies, np.int8)])
    return indices[order], y[order]


def _spread_evenly(total: int, capacity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How many to take from each class: equal shares, capped by what each class holds.

    Classes that run out leave their share to the others; the last few that cannot be split
    evenly go to randomly chosen classes (random so no class is favoured by its name).
    """
    taken = np.zeros(len(capacity), dtype=np.int64)
    remaining = total
    while remaining > 0:
        open_classes = np.flatnonzero(taken < capacity)
        share = remaining // len(open_classes)
        if share == 0:
            lucky = rng.choice(open_classes, size=remaining, replace=False)
            taken[lucky] += 1
            break
        for c in open_classes:
            take = min(share, capacity[c] - taken[c])
            taken[c] += take
            remaining -= take
    return taken
