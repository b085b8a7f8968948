"""How the default's parts are put together: an exploration for a next round of the protocol
(bench/choose_defaults.py). It reads the tuning half of a split that no round has used yet, from
bench/parts_panel.py's cached fits (no network is trained), and refuses a held-out half:

    python bench/score_combination.py --split-seed 50    # -> bench/results/score_combination_split50.csv and .md

The default (frozen in 7065c2c) averages the robust z-scores of its k-NN, network and tails parts
and adds the range part. On full-size KDDCUP its parts alone score 0.87 (k-NN), 0.94 (network), 0.94
(range) and 0.78 (tails), the forest grown on the kept rows 0.98-0.99, the default 0.95-0.97; on the
tables ECOD's per-column tails lead. Columns, each scored from one cached fit per set at seed 0
(the default's reference trim and wide-data rule throughout):

* ``default``: the default frozen in 7065c2c (``distance+tails``, reference trimmed at 1.0);
* ``+forest``: the same with the forest grown on the kept rows beside its parts;
* ``forest for tails``: the forest in place of the tails part;
* ``tails x2``: the tails part at weight 2;
* ``tail prob``: each standardised part as -log of its upper tail probability among the values of the
  rows it was fitted on, (values at or above it + 1) / (n + 1), instead of a robust z-score: every part
  then counts in one unit, how rare the value is, and none can outvote the others by its spread;
* ``tail prob +forest``: the same with the forest beside its parts;
* ``l2 + forest x2``: the package's default before issue 29 (``combined``: the network's error and the
  forest grown on the kept rows, at weight 2), the score that reached the KDDCUP goal at full size;
* ``l2 + forest x2 +range``: the same with the range part added (the default's rule for wide data too);
* ``+forest x2``, ``+forest x4``: the default with the forest beside its parts at weight 2, 4;
* ``range by step``: the default, but where a column is constant on the kept rows the range part counts in
  units of the smallest step from that value to another among the reference rows (all rows), not of 1 (the
  scaled column's whole range): a spike in a column that is 0 on every kept row is then as many steps out as
  it lies, and a rare normal value one step (``StepRange``);
* ``range by reference``: the same, but in units of that column's range over the trimmed reference (all rows
  less those far in their tails), 1 where that is 0 too (``StepRange`` with ``unit="range"``).

Below the table, each column's difference from the default in the mean of family means, with a 95 %
interval from a paired bootstrap over the sets (each family's sets resampled within the family, 2,000
draws, seed 0): a difference whose interval holds 0 is one the tuning half cannot tell from chance.
The spikes columns give the planted spikes that score at or below the normal rows' 99th percentile
(issue 29's gate), per set.
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import parts_panel  # noqa: E402
import synthetic  # noqa: E402
from cleaning_variants import append_row, exploration_args, scored_tuning_sets, write_side_by_side  # noqa: E402
from family_gaps import against_default  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402

DEFAULT = (("knn", "l2", "range", "tails"), ("range",))
FOREST = (("knn", "l2", "iforest", "range", "tails"), ("iforest", "range"))
NO_TAILS = (("knn", "l2", "iforest", "range"), ("iforest", "range"))
# the default the variants are measured against: the one frozen in 7065c2c (its parts on wide data, its reference trim)
WIDE = {"parts": ("knn", "l2"), "columns": 200, "level": 2.0}
TRIM = 1.0
# column: (parts, parts fitted on the kept rows, weights, how the standardised parts are put on one scale)
COLUMNS = {"default": (*DEFAULT, {}, "z"), "+forest": (*FOREST, {}, "z"), "forest for tails": (*NO_TAILS, {}, "z"),
           "tails x2": (*DEFAULT, {"tails": 2.0}, "z"), "tail prob": (*DEFAULT, {}, "tail"),
           "tail prob +forest": (*FOREST, {}, "tail"),
           "l2 + forest x2": (("l2", "iforest"), ("iforest",), {"iforest": 2.0}, "z"),
           "l2 + forest x2 +range": (("l2", "iforest", "range"), ("iforest", "range"), {"iforest": 2.0}, "z"),
           "+forest x2": (*FOREST, {"iforest": 2.0}, "z"), "+forest x4": (*FOREST, {"iforest": 4.0}, "z"),
           "range by step": (*DEFAULT, {}, "step"), "range by reference": (*DEFAULT, {}, "reference")}


class StepRange(score_parts.OutsideRange):
    """The range part, but a column constant on the kept rows counts in units of the smallest step from its
    value to another value of ``among`` (``unit="step"``), or of the column's range over ``among``
    (``unit="range"``), where that is not 0."""

    def fit_among(self, kept: np.ndarray, among: np.ndarray, seed: int, unit: str = "step") -> "StepRange":
        self.fit(kept, seed)
        kept, among = np.asarray(kept, dtype=np.float64), np.asarray(among, dtype=np.float64)
        for column in np.flatnonzero(kept.max(axis=0) - kept.min(axis=0) <= 1e-12):
            steps = np.abs(among[:, column] - kept[0, column])
            steps = steps[steps > 1e-12]
            if len(steps):
                size = steps.min() if unit == "step" else among[:, column].max() - among[:, column].min()
                self.span_[column] = size * (1 + self.level_)
        return self


def upper_tail(values: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """-log((values of ``fitted`` at or above each value + 1) / (n + 1))."""
    ordered = np.sort(fitted)
    at_or_above = len(ordered) - np.searchsorted(ordered, values, side="left")
    return -np.log((at_or_above + 1.0) / (len(ordered) + 1.0))


def score(cache: parts_panel.Values, parts, kept_parts, weights, scale: str) -> np.ndarray:
    if scale == "z":
        return parts_panel.score_of(cache, cache.trimmed(TRIM), parts, weights, kept_parts)
    if scale in ("step", "reference"):  # the range part (added as it is, not standardised) swapped for StepRange
        default = parts_panel.score_of(cache, cache.trimmed(TRIM), parts, weights, kept_parts)
        if "range" not in parts:
            return default
        among = cache.cache["mixed/reference"] if scale == "step" else cache.cache[f"{cache.trimmed(TRIM)}/reference"]
        step = StepRange().fit_among(cache.cache["kept/reference"], among, cache.seed, "step" if scale == "step" else "range")
        return default - cache["kept/range"] + step.values(cache.X, {})
    prefix = cache.trimmed(TRIM)
    out, total = 0.0, 0.0
    for part in parts:
        view = "kept" if part in kept_parts else prefix
        values, fitted = cache[f"{view}/{part}"], cache[f"{view}/{part}@ref"]
        if score_parts.PARTS[part].standardised:
            w = weights.get(part, 1.0)
            out, total = out + w * upper_tail(values, fitted), total + w
    out = out / total
    for part in parts:
        if not score_parts.PARTS[part].standardised:
            out = out + cache[f"kept/{part}"]
    return out


def measures(name: str, family: str, Xscore: np.ndarray, y: np.ndarray, cache_dir: Path) -> dict[str, float]:
    cache = parts_panel.Values(np.load(cache_dir / f"{name}_s0.npz"), Xscore, 0)
    out = {}
    for column, (parts, kept_parts, weights, scale) in COLUMNS.items():
        if column != "l2 + forest x2":  # it has no rule for wide data
            parts = parts_panel.wide_parts(cache, WIDE) or parts
        s = score(cache, parts, kept_parts, weights, scale)
        out[column] = float(roc_auc_score(y, s))
        if family == "spikes":
            out[f"{column} missed"] = synthetic.spikes_missed(s, y)
    return out


def main() -> None:
    args = exploration_args(__doc__, "score_combination", cached=True)
    csv_path = panel.RESULTS / f"score_combination_split{args.split_seed}.csv"
    fields = ["dataset", "family", *COLUMNS, *(f"{c} missed" for c in COLUMNS)]
    if not args.table_only:
        warnings.filterwarnings("ignore")
        csv_path.unlink(missing_ok=True)
        for name, family, Xscore, y in scored_tuning_sets(args.split_seed, args.data_dir):
            row = {"dataset": name, "family": family, **measures(name, family, Xscore, y, args.cache)}
            append_row(csv_path, fields, row)
            print(name, " ".join(f"{v:.3f}" for k, v in row.items() if k not in ("dataset", "family")), flush=True)
    write_side_by_side(csv_path, COLUMNS, f"How the default's parts are put together (SPLIT_SEED {args.split_seed}, tuning half, seed 0)",
                       "score_combination")
    rows = list(csv.DictReader(csv_path.open()))
    lines = against_default(rows, COLUMNS, " (of 4 sets x 20)")
    with csv_path.with_suffix(".md").open("a") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
