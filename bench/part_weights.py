"""How much each of the default's parts should weigh, and where the per-column parts belong: an exploration
for issue 29's tenth round. It reads the tuning half of a split that no round has used yet, from
bench/parts_panel.py's cached fits (no network is trained), and refuses a held-out half:

    python bench/part_weights.py --split-seed 51 --cache runs/parts_cache   # -> bench/results/part_weights_split51.csv and .md
    python bench/part_weights.py --split-seed 51 --half held-out --cache runs/parts_cache   # after the freeze: _held-out.csv/.md

It refuses a tuning half whose held-out half has run (an exploration for a next round), and a held-out half
that has not (read only after a freeze, as a check of what it changed).

The default averages the robust z-scores of the k-NN part, the network's squared error and the tails part,
and adds the range part (``distance+tails``); on wide data (200+ columns where normal rows commonly leave the
kept range: L >= 2) the k-NN part and the network's two errors (``knn+l2+cosine``). On dense text embeddings
(bench/text_embeddings.py, after the ninth round's freeze) the k-NN part alone scored 0.824 and the default
0.805: there no set is wide by that rule, and the per-column parts, which read a column at a time, add what a
384-column embedding's single columns do not carry. Columns, each from one cached fit per set at seed 0 (the
default's reference trim throughout):

* ``default``: the default frozen in f129878, ``distance+tails`` and on wide data ``knn+l2+cosine`` (the tenth
  round's starting point);
* ``frozen``: the package's default as ``auto`` resolves it (after the tenth round's freeze, 3e98311: on dense
  data ``knn2+l2+range``); added after the freeze, so the tuning table shows it beside what it was chosen from;
* ``knn x2``: the same parts, the k-NN part at weight 2;
* ``no tails``: the default without the tails part (its range part kept: the spikes);
* ``wide by columns``: the wide-data parts wherever the set has 200+ columns, whatever L;
* ``wide at 64``: the wide-data parts where the set has 64+ columns and L >= 2;
* ``dense``: the wide-data parts also where the set has 64+ columns and its columns are dense: on the kept rows,
  a column's most common value is held by at most half the rows in the median column (``modal share``);
* ``many: knn x2, l2, range``: on data with 200+ columns that is not wide (L < 2), the k-NN part at weight 2, the
  squared error and the range part, the tails part left out; ``many: knn, l2, range`` the same at equal weights
  (added after a first look at the text family's sets);
* ``knn alone``, ``network alone`` (``l2``, or ``l2`` and ``cosine`` on wide data): for reading the others;
* ``max``: the default's parts, the largest of the standardised parts' robust z-scores in place of their mean (the
  range part added as before): a row far out on one part alone is not averaged down by the parts that do not see
  it (a dependency anomaly is at the median of every column's tails);
* ``mean+max``: the mean of the two.

Besides each set's AUROC: its columns, L (the range part's level on the kept rows) and modal share, so that a
rule can be read against them; and for the spikes family the planted spikes each column misses (at or below
the normal rows' 99th percentile: issue 29's gate). Below the table, each column's difference from the default
in the mean of family means, with a 95 % interval from a paired bootstrap over the sets (family_gaps.interval).
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import parts_panel  # noqa: E402
import synthetic  # noqa: E402
from cleaning_variants import (FITS, RERUN_HELP, USED_SPLITS, append_row, refuse_used_split, scored_tuning_sets,  # noqa: E402
                               write_side_by_side)
from family_gaps import against_default  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators import scoring  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

NARROW = ("knn", "l2", "range", "tails")
WIDE = ("knn", "l2", "cosine")
DENSE_COLUMNS = 64
DENSE_MODAL_SHARE = 0.5
# column: a function of the set's signals giving (parts, weights, how the standardised parts' z-scores are put
# together: "mean" as the package does, "max" their largest, "mean+max" the mean of those two)
COLUMNS = {
    "default": lambda s: (WIDE if s["wide"] else NARROW, {}),
    "frozen": lambda s: (s["package"][0], s["package"][1]),
    "knn x2": lambda s: (WIDE if s["wide"] else NARROW, {"knn": 2.0}),
    "no tails": lambda s: (WIDE if s["wide"] else ("knn", "l2", "range"), {}),
    "wide by columns": lambda s: (WIDE if s["columns"] >= 200 else NARROW, {}),
    "wide at 64": lambda s: (WIDE if s["columns"] >= DENSE_COLUMNS and s["level"] >= 2 else NARROW, {}),
    "dense": lambda s: (WIDE if s["wide"] or (s["columns"] >= DENSE_COLUMNS and s["modal share"] <= DENSE_MODAL_SHARE)
                        else NARROW, {}),
    "knn alone": lambda s: (("knn",), {}),
    "network alone": lambda s: (("l2", "cosine") if s["wide"] else ("l2",), {}),
    "many: knn x2, l2, range": lambda s: (WIDE if s["wide"] else ("knn", "l2", "range") if s["columns"] >= 200 else NARROW,
                                          {"knn": 2.0} if not s["wide"] and s["columns"] >= 200 else {}),
    "many: knn, l2, range": lambda s: (WIDE if s["wide"] else ("knn", "l2", "range") if s["columns"] >= 200 else NARROW, {}),
    "max": lambda s: (WIDE if s["wide"] else NARROW, {}, "max"),
    "mean+max": lambda s: (WIDE if s["wide"] else NARROW, {}, "mean+max"),
}
SIGNALS = ("columns", "level", "modal share")


def signals(cache: parts_panel.Values) -> dict:
    kept = cache.cache["kept/reference"]
    level = score_parts.OutsideRange().fit(kept, cache.seed).level_
    columns = kept.shape[1]
    resolved = score_parts.resolved_score(DEFAULTS["score"], kept, cache.seed)
    return {"columns": columns, "level": float(level), "modal share": score_parts.modal_share(kept),
            "wide": columns >= score_parts.WIDE_COLUMNS and level >= score_parts.WIDE_LEVEL,
            "package": (score_parts.parts_of(resolved), score_parts.WEIGHTS.get(resolved, {}))}


def put_together(cache: parts_panel.Values, view: str, parts: tuple[str, ...], how: str) -> np.ndarray:
    """The standardised parts' robust z-scores (each over the rows it is fitted on, as parts.combine takes
    them) put together by ``how`` ("max" or "mean+max"), plus the parts that are not standardised."""
    kept = parts_panel.kept_parts(parts)
    z, added = [], 0.0
    for part in parts:
        where = "kept" if part in kept else view
        values = cache[f"{where}/{part}"]
        if score_parts.PARTS[part].standardised:
            center, scale = scoring.robust_scale(cache[f"{where}/{part}@ref"])
            z.append((values - center) / scale)
        else:
            added = added + values
    z = np.array(z)
    together = z.max(axis=0) if how == "max" else (z.max(axis=0) + z.mean(axis=0)) / 2
    return together + added


def measures(name: str, family: str, Xscore: np.ndarray, y: np.ndarray, cache_dir: Path) -> dict:
    cache = parts_panel.Values(np.load(cache_dir / f"{name}_s0.npz"), Xscore, 0)
    found = signals(cache)
    out = {k: round(found[k], 4) for k in SIGNALS}
    view = cache.trimmed(parts_panel.package_default()[4])
    for column, rule in COLUMNS.items():
        parts, weights, how = (*rule(found), "mean")[:3]
        s = parts_panel.score_of(cache, view, parts, weights, parts_panel.kept_parts(parts)) if how == "mean" else \
            put_together(cache, view, parts, how)
        out[column] = float(roc_auc_score(y, s))
        if family == "spikes":
            out[f"{column} missed"] = synthetic.spikes_missed(s, y)
    return out


def arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seed", type=int, required=True)
    parser.add_argument("--half", choices=("tuning", "held-out"), default="tuning")
    parser.add_argument("--rerun-used-split", action="store_true", help=RERUN_HELP)
    parser.add_argument("--cache", type=Path, default=FITS, help="bench/parts_panel.py's cached fits")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    args = parser.parse_args()
    if args.half == "tuning":
        refuse_used_split(args.split_seed, "part_weights", args.rerun_used_split)
    elif args.split_seed not in USED_SPLITS:
        sys.exit(f"part_weights: split {args.split_seed}'s held-out half has not run; it is read after a freeze only")
    return args


def main() -> None:
    args = arguments()
    suffix = "" if args.half == "tuning" else "_held-out"
    csv_path = panel.RESULTS / f"part_weights_split{args.split_seed}{suffix}.csv"
    fields = ["dataset", "family", *SIGNALS, *COLUMNS, *(f"{c} missed" for c in COLUMNS)]
    if not args.table_only:
        warnings.filterwarnings("ignore")
        csv_path.unlink(missing_ok=True)
        for name, family, Xscore, y in scored_tuning_sets(args.split_seed, args.data_dir, args.half):
            row = {"dataset": name, "family": family, **measures(name, family, Xscore, y, args.cache)}
            append_row(csv_path, fields, row)
            print(name, " ".join(f"{k} {v:.3f}" for k, v in row.items() if k not in ("dataset", "family")), flush=True)
    write_side_by_side(csv_path, COLUMNS, f"Part weights and where the per-column parts belong (SPLIT_SEED {args.split_seed}, "
                       f"{args.half} half, seed 0)", "part_weights")
    rows = list(csv.DictReader(csv_path.open()))
    lines = against_default(rows, COLUMNS)
    lines += ["", "Each set's signals (columns, L, modal share) and AUROCs are in the CSV."]
    with csv_path.with_suffix(".md").open("a") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
