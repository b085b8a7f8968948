"""Two blind spots of the default's parts, and a fix for each: an exploration for a next round. It reads the
tuning half of a split whose held-out half has not run (from bench/parts_panel.py's cached fits) and the sets of
bench/unseen_bases.py (tuning material since bench/unseen_parts.py was read; their fits cached by it), and no
held-out set:

    python bench/part_fixes.py --split-seed 50    # -> bench/results/part_fixes_split50.csv and .md

* **The tails part and dependency anomalies** (unseen_parts.md: the tails part alone 0.55 on them). It sums
  each column's tail probability, and normal rows of correlated columns lie in the tails of many columns at
  once. ``tails rotated`` measures the tails on the reference's principal axes instead (parts_panel.AxesTails),
  where correlated columns are one axis and a row that breaks the correlation lies far out on a minor axis.
* **The range part on heavy-tailed columns** (1_ALOI+spikes: normal rows lie 35 kept ranges out by chance). Its
  level is one number, the 95th percentile over half of the kept rows, which the cleaning made a narrow core.
  ``range per column`` takes a level per column instead, the 99th percentile of the column's distance beyond the
  kept range over the (trimmed) reference, all rows less those far in their tails: a row counts as
  (d - L_c) / (1 + L_c) in the column where that is largest.

Columns: ``default``; each fix alone; both; ``tails and rotated``: the tails part on the columns and on the
principal axes side by side (five parts); ``tails and rotated, half weight``: the same, each of the two at weight
1/2, so that together they weigh what the tails part weighs in the default; ``range in reference units``: the
range part with each column's unit the wider of the kept rows' fenced range and the trimmed reference's
(``ReferenceUnitRange``): on 1_ALOI the kept core of a heavy-tailed column is narrow, and normal rows lie far
beyond it in units of that core but not in units of the reference's spread.

The table gives the mean AUROC per family (the unseen bases' synthetic sets are the family ``unseen``, their
spike sets ``unseen spikes``), per spike set the spikes at or below the normal rows' 99th percentile, and the
default's lowest-scoring spike of each (``lowest_spike``).
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
from cleaning_variants import append_row, exploration_args, scored_tuning_sets  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from unseen_bases import new_bases  # noqa: E402
from unseen_parts import CACHES  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402

# the default these fixes are measured against: the one frozen in 7065c2c (its reference trim, its parts on wide data)
TRIM = 1.0
WIDE = {"parts": ("knn", "l2"), "columns": 200, "level": 2.0}
COLUMNS = {"default": ("tails", "range"), "tails rotated": ("tails_axes", "range"),
           "range per column": ("tails", "range_per_column"), "both": ("tails_axes", "range_per_column"),
           "tails and rotated": (("tails", "tails_axes"), "range"),
           "tails and rotated, half weight": (("tails", "tails_axes"), "range", {"tails": 0.5, "tails_axes": 0.5}),
           "range in reference units": ("tails", "range_reference_unit")}


class ReferenceUnitRange(score_parts.OutsideRange):
    """The range part, but each column's unit is the wider of the kept rows' fenced range and the (trimmed)
    reference's fenced range (``unit_reference``): a column whose kept core is narrow but whose normal rows
    spread far (heavy tails) counts in units of that spread. A spike lies beyond the reference's fence (3 inner
    ranges around its 1st-99th percentiles), so it cannot widen the unit itself."""

    def fit_with_unit(self, kept: np.ndarray, reference: np.ndarray, seed: int) -> "ReferenceUnitRange":
        self.unit_reference = score_parts.OutsideRange()._fit_range(np.asarray(reference, dtype=np.float64)).span_
        return self.fit(kept, seed)

    def _fit_range(self, reference):
        super()._fit_range(reference)
        self.span_ = np.maximum(self.span_, self.unit_reference)
        return self


def range_per_column(kept: np.ndarray, reference: np.ndarray, X: np.ndarray, seed: int) -> np.ndarray:
    """The range part with a level per column (see the module docstring), on the rows of X."""
    fitted = score_parts.OutsideRange().fit(kept, seed)
    span = fitted.span_ / (1 + fitted.level_)  # the kept range itself, without the one level

    def beyond(rows):
        rows = np.asarray(rows, dtype=np.float64)
        return np.maximum(np.maximum(rows - fitted.high_, fitted.low_ - rows), 0.0) / span

    level = np.quantile(beyond(reference), 0.99, axis=0)
    return (np.maximum(beyond(X) - level, 0.0) / (1 + level)).max(axis=1)


def score(cache: parts_panel.Values, column: str) -> np.ndarray:
    tails, ranged, *weights = COLUMNS[column]
    weights = weights[0] if weights else {}
    view = cache.trimmed(TRIM)
    wide = parts_panel.wide_parts(cache, WIDE)
    if wide:  # the default's parts on wide data have neither
        return parts_panel.score_of(cache, view, wide, {}, ())
    s = parts_panel.score_of(cache, view, ("knn", "l2", *((tails,) if isinstance(tails, str) else tails)), weights, ())
    if ranged == "range":
        return s + cache["kept/range"]
    if ranged == "range_reference_unit":
        fitted = ReferenceUnitRange().fit_with_unit(cache.cache["kept/reference"], cache.cache[f"{view}/reference"], cache.seed)
        return s + fitted.values(cache.X, {})
    return s + range_per_column(cache.cache["kept/reference"], cache.cache[f"{view}/reference"], cache.X, cache.seed)


LOWEST = ("default margin", "spike column", "spike value", "kept low", "kept high", "normal max", "range of spike",
          "range normal p99", "range normal max")


def lowest_spike(cache: parts_panel.Values, s: np.ndarray, y: np.ndarray) -> dict:
    """The default's lowest-scoring spike of a spike set: its score less the normal rows' 99th percentile
    (``default margin``, negative where it is missed), the column it was planted in (where it lies farthest
    beyond the kept rows' range), its value there, the kept rows' range of that column, the normal rows' largest
    value in it, and the range part's value of the spike beside its 99th percentile and maximum over the normal
    rows."""
    fitted = score_parts.OutsideRange().fit(cache.cache["kept/reference"], cache.seed)
    ranged = cache["kept/range"]
    spikes = np.flatnonzero(y == 1)
    row = spikes[np.argmin(s[spikes])]
    x = np.asarray(cache.X[row], dtype=np.float64)
    column = int(np.argmax(np.maximum(np.maximum(x - fitted.high_, fitted.low_ - x), 0.0) / fitted.span_))
    normal = y == 0
    values = (s[row] - np.percentile(s[normal], 99), column, x[column], fitted.low_[column], fitted.high_[column],
              cache.X[normal, column].max(), ranged[row], np.percentile(ranged[normal], 99), ranged[normal].max())
    return {k: round(float(v), 4) for k, v in zip(LOWEST, values)}


def sets(split_seed: int, data_dir: Path):
    """(name, family, rows scored, labels, cache folder): the tuning half, then the unseen bases' sets."""
    for name, family, X, y in scored_tuning_sets(split_seed, data_dir):
        yield name, family, X, y, parts_panel.CACHE
    for name, family, _, load in panel.catalog(2000, data_dir, data_dir / "odds_adbench", new_bases(data_dir / "odds_adbench")):
        if family in ("synthetic", "spikes"):
            _, _, X, y = load()
            yield name, "unseen" if family == "synthetic" else "unseen spikes", X, y, CACHES["unseen"]


def main() -> None:
    args = exploration_args(__doc__, "part_fixes", cached=True)
    parts_panel.CACHE = args.cache
    csv_path = panel.RESULTS / f"part_fixes_split{args.split_seed}.csv"
    fields = ["dataset", "family", *COLUMNS, *(f"{c} missed" for c in COLUMNS), *LOWEST]
    if not args.table_only:
        warnings.filterwarnings("ignore")
        csv_path.unlink(missing_ok=True)
        for name, family, X, y, folder in sets(args.split_seed, args.data_dir):
            cache = parts_panel.Values(np.load(folder / f"{name}_s0.npz"), X, 0)
            row = {"dataset": name, "family": family}
            for column in COLUMNS:
                s = score(cache, column)
                row[column] = round(float(roc_auc_score(y, s)), 5)
                if family.endswith("spikes"):
                    row[f"{column} missed"] = synthetic.spikes_missed(s, y)
                    if column == "default":
                        row.update(lowest_spike(cache, s, y))
            append_row(csv_path, fields, row)
            print(name, " ".join(str(row[c]) for c in COLUMNS), flush=True)
    rows = list(csv.DictReader(csv_path.open()))
    families = list(dict.fromkeys(r["family"] for r in rows))
    groups = {f: [r for r in rows if r["family"] == f] for f in families}
    for r in rows:
        if r["family"] in ("synthetic", "unseen"):
            groups.setdefault(f"{r['family']} {r['dataset'].split('+')[1].rsplit('_', 1)[0]}", []).append(r)
    lines = [f"# Two blind spots and their fixes (SPLIT_SEED {args.split_seed}'s tuning half and the unseen bases, seed 0)", "",
             "`python bench/part_fixes.py` (see its docstring); mean AUROC.", "",
             "| | sets | " + " | ".join(COLUMNS) + " |", "|---|---:|" + "---:|" * len(COLUMNS)]
    for key, members in groups.items():
        lines.append(f"| {key} | {len(members)} | " + " | ".join(f"{np.mean([float(r[c]) for r in members]):.3f}" for c in COLUMNS) + " |")
    means = [np.mean([np.mean([float(r[c]) for r in groups[f]]) for f in families]) for c in COLUMNS]
    lines.append("| **mean of family means** | | " + " | ".join(f"**{m:.4f}**" for m in means) + " |")
    lines += ["", "Spikes at or below the normal rows' 99th percentile (20 per set), where any column misses one:", "",
              "| set | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        if r["family"].endswith("spikes") and any(r[f"{c} missed"] not in ("", "0") for c in COLUMNS):
            lines.append(f"| {r['dataset']} | " + " | ".join(r[f"{c} missed"] for c in COLUMNS) + " |")
    lines += ["", "The default's lowest-scoring spike of each spike set (``lowest_spike``: its margin over the normal rows' "
              "99th percentile, the column it lies in and that column's kept range, the range part on it and on the "
              "normal rows):", "", "| set | " + " | ".join(LOWEST) + " |", "|---|" + "---:|" * len(LOWEST)]
    for r in rows:
        if r["family"].endswith("spikes"):
            lines.append(f"| {r['dataset']} | " + " | ".join(r[k] for k in LOWEST) + " |")
    csv_path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {csv_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
