"""Clustered anomalies at 20 %: does trimming the reference by its tails find them? An exploration for a
next round of the protocol (bench/choose_defaults.py): it reads the tuning half of a split that no round has
used yet, from bench/parts_panel.py's cached fits (no network is trained), and refuses a held-out half:

    python bench/reference_trim.py --split-seed 48    # -> bench/results/reference_trim_split48.csv and .md

The default's k-NN and tails parts measure a row against the reference, a sample of all rows. A group of
anomalies that is many and alike (ADBench's clustered anomalies at 20 %) is then its own nearest
neighbours and widens each column's distribution over itself, so both parts miss it. Trimming the
reference by its tails (cleaning.tails_trim: a reference row whose tails value, fitted on the reference,
lies more than ``cutoff`` spreads above the upper quartile is left out) takes such a group out where it
lies in the tails. Columns, each scored from one cached fit per set at seed 0:

* ``default``: the default frozen in 54d6b38 (``distance+tails``; ``knn+l2`` on wide data);
* ``+forest``: the same with the forest grown on the kept rows (KDDCUP's best part);
* ``trim C``: the default with its reference trimmed at cutoff C; ``trim C +forest`` likewise.

The table gives the mean AUROC per family and per synthetic type and share, with the best peer
(bench/results/panel.csv, seed 0) beside each.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import parts_panel  # noqa: E402
from cleaning_variants import append_row, exploration_args, scored_tuning_sets, write_side_by_side  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

DEFAULT = (("knn", "l2", "range", "tails"), ("range",))
FOREST = (("knn", "l2", "iforest", "range", "tails"), ("iforest", "range"))
WIDE = {"parts": ("knn", "l2"), "columns": 200, "level": 2.0}
# column: (parts, parts fitted on the kept rows, the reference's trim cutoff or None)
COLUMNS = {"default": (*DEFAULT, None), "+forest": (*FOREST, None),
           **{f"trim {c}": (*DEFAULT, c) for c in (1.0, 1.5, 2.0, 3.0)},
           **{f"trim {c} +forest": (*FOREST, c) for c in (1.0, 1.5)}}


def aurocs(name: str, Xscore: np.ndarray, y: np.ndarray, cache_dir: Path) -> dict[str, float]:
    cache = parts_panel.Values(np.load(cache_dir / f"{name}_s0.npz"), Xscore, 0)
    out = {}
    for column, (parts, kept_parts, cutoff) in COLUMNS.items():
        parts = parts_panel.wide_parts(cache, WIDE) or parts
        out[column] = float(roc_auc_score(y, parts_panel.score_of(cache, cache.trimmed(cutoff), parts, {}, kept_parts)))
    return out


def main() -> None:
    args = exploration_args(__doc__, "reference_trim", cached=True)
    csv_path = panel.RESULTS / f"reference_trim_split{args.split_seed}.csv"
    if not args.table_only:
        warnings.filterwarnings("ignore")
        csv_path.unlink(missing_ok=True)
        for name, family, Xscore, y in scored_tuning_sets(args.split_seed, args.data_dir):
            row = {"dataset": name, "family": family, **aurocs(name, Xscore, y, args.cache)}
            append_row(csv_path, list(row), row)
            print(name, " ".join(f"{v:.3f}" for k, v in row.items() if k not in ("dataset", "family")), flush=True)
    write_side_by_side(csv_path, COLUMNS, f"The reference trimmed by its tails (SPLIT_SEED {args.split_seed}, tuning half, seed 0)", "reference_trim")


if __name__ == "__main__":
    main()
