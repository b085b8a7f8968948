"""Clustered anomalies: does a tails part, or a cleaning gated by it, beat ECOD there? An exploration for
a next round of the protocol (bench/choose_defaults.py): it reads the tuning half of a split that no
round has used yet and refuses a held-out half:

    python bench/tails_gate.py --split-seed 45 --part 0/2    # and 1/2 in a second process
    python bench/tails_gate.py --split-seed 45 --table-only  # -> bench/results/tails_gate_split45.md

A tight group of anomalies far from the normal modes (ADBench's clustered anomalies) is low-variance,
so the paper's rule keeps it as normal, and its rows are one another's nearest neighbours, so the
k-NN part misses it; ECOD sees it because it lies in the tails of many columns at once. Two answers,
each fitted once per set at seed 0:

* the score: ``default`` is the default frozen in c484266 (``distance+forest``: knn, l2, iforest and
  range; ``knn+l2`` on wide data, parts.resolve), and ``+tails`` the same with ``tails`` added
  (parts.Tails, ECOD's sum of -log tail probabilities, fitted on the reference rows);
* the cleaning, *gated*: a cluster whose median ``tails`` value (fitted on all rows) lies more than
  ``GATE`` interquartile ranges above the upper quartile of all rows' values is never kept, in the
  initial selection or in any re-selection (selection.select_low_variance, wrapped here: the gate is
  not in the package);
* both scores with every part fitted on the kept rows (``kept``): with a clean kept set, a far group
  is far from every reference row.

The table gives the mean AUROC per family and per synthetic type and share, with the best peer
(bench/results/panel.csv, seed 0) beside each.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
from cleaning_variants import append_row, exploration_args, tuning_sets, write_side_by_side  # noqa: E402

from deepuad.estimators import parts, selection  # noqa: E402

GATE = 1.5  # Tukey's fence, in interquartile ranges above the upper quartile
SCORES = {"default": "forest-auto", "+tails": "forest-auto+tails"}  # as this script registers them (main)
COLUMNS = ("default", "+tails", "kept", "kept +tails", "gated", "gated +tails", "gated kept", "gated kept +tails")


class Gate:
    """select_low_variance with the clusters whose median ``values`` lie beyond the fence left out
    (while ``values`` is set and holds one value per row), as if they held no row."""

    def __init__(self):
        self.values = None
        self.select_low_variance = selection.select_low_variance

    def __call__(self, labels, sizes, variances, p, over="clusters", min_fraction=0.01):
        values = self.values
        if values is not None and len(values) == len(labels):
            labels, sizes = np.asarray(labels), np.asarray(sizes).copy()
            q1, q3 = np.percentile(values, [25, 75])
            median = np.array([np.median(values[labels == k]) if sizes[k] else -np.inf for k in range(len(sizes))])
            beyond = median > q3 + GATE * (q3 - q1)
            if sizes[~beyond].sum():  # never gate every cluster
                sizes[beyond] = 0
        return self.select_low_variance(labels, sizes, variances, p, over=over, min_fraction=min_fraction)


def aurocs(Xfit: np.ndarray, Xscore: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """AUROC of each score, with its parts fitted on the reference rows and on the kept rows, of one fit."""
    from sklearn.metrics import roc_auc_score

    from deepuad.estimators.detector import DeepUAD
    from deepuad.estimators.scorer import Scorer

    detector = DeepUAD(seed=0).fit(Xfit)
    rows, kept_rows = (parts.reference_rows(np.random.default_rng([0, len(detector.iterations_)]), among, detector.reference_size)
                       for among in (np.arange(len(Xfit)), detector.selected_))
    X = np.ascontiguousarray(Xscore, dtype=np.float32)
    out = {}
    for name, score in SCORES.items():
        for view, reference in (("", rows), ("kept", kept_rows)):
            scorer = Scorer.fit(score, Xfit, reference, 0, detector.n_neighbors, detector.model_, detector.device,
                                kept=np.isin(reference, detector.selected_), kept_rows=kept_rows)
            values, _, _ = scorer.values(X, detector.model_)
            key = name if not view else "kept" if name == "default" else f"kept {name}"
            out[key] = float(roc_auc_score(y, scorer.combined(values)))
    return out


def main() -> None:
    args = exploration_args(__doc__, "tails_gate")
    csv_path = panel.RESULTS / f"tails_gate_split{args.split_seed}.csv"
    if not args.table_only:
        import torch

        torch.set_num_threads(1)
        warnings.filterwarnings("ignore")
        parts.SCORES["distance+forest+tails"] = (*parts.SCORES["distance+forest"], "tails")
        parts.BY_DATA["forest-auto"] = ("distance+forest", "knn+l2")
        parts.BY_DATA["forest-auto+tails"] = ("distance+forest+tails", "knn+l2")
        gate = Gate()
        selection.select_low_variance = gate
        for name, family, _, load in tuning_sets(args, csv_path):
            Xfit, _, Xscore, y = load()
            if y.min() == y.max():
                continue
            row = {"dataset": name, "family": family}
            gate.values = None
            row.update(aurocs(Xfit, Xscore, y))
            gate.values = parts.PARTS["tails"]().fit(Xfit, 0).values(Xfit, {})
            row.update({"gated" if k == "default" else f"gated {k}": v for k, v in aurocs(Xfit, Xscore, y).items()})
            row = {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}
            append_row(csv_path, ["dataset", "family", *COLUMNS], row)
            print(name, row, flush=True)
    write_side_by_side(csv_path, COLUMNS, f"A tails part and a gated cleaning (SPLIT_SEED {args.split_seed}, tuning half, seed 0)",
                       "tails_gate")


if __name__ == "__main__":
    main()
