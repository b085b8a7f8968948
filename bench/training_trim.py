"""Clustered anomalies and the network: does the *training set*, trimmed by its tails as the reference is,
make the cleaning show? An exploration for a next round of the protocol (bench/choose_defaults.py): it
reads the tuning half of a split that no round has used yet and refuses a held-out half:

    python bench/training_trim.py --split-seed 50
    # -> bench/results/training_trim_split50.csv and .md

The default (7065c2c) trims the reference its k-NN and tails parts measure against (cleaning.tails_trim), but
the network still learns the rows the paper's cleaning keeps, and that cleaning keeps a compact group of
anomalies as one of its low-variance clusters: the network then reconstructs the group well, and its error
part is blind to it. Here the rows that the tails fence leaves out of the whole data (cleaning.tails_trim
over a seeded sample of all rows, the fence applied to every row) are never in the training set: not at
the start, and not at any re-selection (the paper's rules, then those rows taken out; registered here as
the rules ``variance+tails``, not in the package). Columns, each fitted at seed 0:

* ``default``: the package's default (from bench/parts_panel.py's cached fit of the set);
* ``trained trimmed``: the default's score, its network trained on the trimmed training set;
* ``l2 default``, ``l2 trimmed``: the error part alone, of each network (what the network itself sees).

The table gives the mean AUROC per family and per synthetic type and share, with the best peer
(bench/results/panel.csv, seed 0) beside each.
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import parts_panel  # noqa: E402
from cleaning_variants import append_row, exploration_args, scored_tuning_sets, write_side_by_side  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepuad.estimators import rules  # noqa: E402
from deepuad.estimators.cleaning import tails_fence  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402
from deepuad.estimators.parts import Tails, reference_rows  # noqa: E402
from deepuad.estimators.selection import Selection  # noqa: E402

COLUMNS = ("default", "trained trimmed", "l2 default", "l2 trimmed")


def fenced_rows(X: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask over the rows of X: those beyond the tails fence (cleaning.tails_fence at the default's
    reference_trim) of a seeded sample of all rows, as DeepUAD draws its reference."""
    sample = X[reference_rows(np.random.default_rng(seed), np.arange(len(X)), DEFAULTS["reference_size"])]
    tails = Tails().fit(sample, 0)
    return tails.values(X, {}) > tails_fence(tails.values(sample, {}), DEFAULTS["reference_trim"])


class TrimmedStart(rules.LowVarianceStart):
    name = "variance+tails"
    out: np.ndarray | None = None

    def choose(self, X, clustered, params):
        selected = clustered.selected[~self.out[clustered.selected]]
        return Selection(clustered.labels, clustered.sizes, clustered.variances, clustered.threshold, clustered.accepted,
                         selected, clustered.fallback, clustered.extra)


class TrimmedReselect(rules.LowVarianceClusters):
    name = "variance+tails"

    def choose(self, detector, X, errors, codes, seed):
        chosen = super().choose(detector, X, errors, codes, seed)
        chosen.selected = chosen.selected[~TrimmedStart.out[chosen.selected]]
        return chosen


def measure(name: str, family: str, Xscore: np.ndarray, y: np.ndarray, cache_dir: Path) -> dict:
    from deepuad.estimators.detector import DeepUAD

    cache = parts_panel.Values(np.load(cache_dir / f"{name}_s0.npz"), Xscore, 0)
    parts = parts_panel.wide_parts(cache, {"parts": ("knn", "l2"), "columns": 200, "level": 2.0}) or ("knn", "l2", "range", "tails")
    default = parts_panel.score_of(cache, cache.trimmed(DEFAULTS["reference_trim"]), parts, {}, ("range",))
    TrimmedStart.out = fenced_rows(Xscore, 0)
    trimmed = DeepUAD(seed=0, init_by="variance+tails", reselect_by="variance+tails").fit(Xscore)
    return {"dataset": name, "family": family, "fenced": round(float(TrimmedStart.out.mean()), 4),
            "default": roc_auc_score(y, default), "trained trimmed": roc_auc_score(y, trimmed.decision_scores_),
            "l2 default": roc_auc_score(y, cache["mixed/l2"]),
            "l2 trimmed": roc_auc_score(y, trimmed.score_parts(Xscore)["l2"])}


def main() -> None:
    args = exploration_args(__doc__, "training_trim", cached=True)
    csv_path = panel.RESULTS / f"training_trim_split{args.split_seed}.csv"
    if not args.table_only:
        import torch

        torch.set_num_threads(1)
        warnings.filterwarnings("ignore")
        rules.INITIAL[TrimmedStart.name], rules.RESELECT[TrimmedReselect.name] = TrimmedStart, TrimmedReselect
        done = {r["dataset"] for r in csv.DictReader(csv_path.open())} if csv_path.exists() else set()
        for name, family, Xscore, y in scored_tuning_sets(args.split_seed, args.data_dir):
            if name not in done:
                row = measure(name, family, Xscore, y, args.cache)
                append_row(csv_path, ["dataset", "family", "fenced", *COLUMNS], row)
                print(name, " ".join(f"{k} {v:.3f}" for k, v in row.items() if k not in ("dataset", "family")), flush=True)
    write_side_by_side(csv_path, COLUMNS, f"The training set trimmed by its tails (SPLIT_SEED {args.split_seed}, tuning half, seed 0)", "training_trim")


if __name__ == "__main__":
    main()
