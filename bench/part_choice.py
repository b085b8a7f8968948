"""Can a label-free signal say which part of the default score to trust on a data set? The parts
disagree by family (the forest leads on tables and KDDCUP, the k-NN distance and the network's
error on images), and the best part of each set, chosen with its labels, would lift the mean of
family means by about 0.02 over the default's equal weights. This measures, on the tuning half of
a split no round has used (it refuses a split whose held-out half has run), whether signals that
need no label find that part:

* ``cleaning``: the AUROC of a part at telling the rows the cleaning left out from those it kept
  (the forest and the range grown on one half of the kept rows and judged on the other half and
  the left-out rows, so that they are not judged on the rows they were grown on);
* ``tail``: how far a part's 99th percentile lies above its median, in interquartile ranges, over
  a sample of all rows (a part that sees the anomalies sets them apart in its upper tail);
* ``skew``: the skewness of the part's values over that sample.

For each it gives how often the part it ranks first is the set's best part (beside the share of
sets where always the same part is best), and the default score with the standardised parts
weighted by the signal or reduced to the part it ranks first.

    python bench/part_choice.py --split-seed 45               # -> bench/results/part_choice_split45.{csv,md}
    python bench/part_choice.py --split-seed 45 --table-only

From the parts cache of bench/parts_panel.py (``--cache``; it holds the network's errors and the
rows each part is fitted on, at seed 0), so it fits no network; about a minute for the half.
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import skew  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
from cleaning_variants import exploration_args, scored_tuning_sets  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators import scoring  # noqa: E402
from deepuad.estimators.metrics import ranking_metrics  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

DEFAULT_PARTS = score_parts.parts_of(DEFAULTS["score"])
STANDARDISED = tuple(p for p in DEFAULT_PARTS if score_parts.PARTS[p].standardised)
SIGNALS = ("cleaning", "tail", "skew")
VARIANTS = ("default", *(f"{how} {signal}" for signal in SIGNALS for how in ("weights by", "first by")),
            "best part (labels)")


def tail(values: np.ndarray) -> float:
    """(99th percentile - median) / interquartile range."""
    q1, q50, q3, q99 = np.percentile(values, [25, 50, 75, 99])
    return float((q99 - q50) / max(q3 - q1, 1e-12))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """The package's AUROC; NaN with one class."""
    value = ranking_metrics(np.asarray(y, dtype=bool), score)["auroc"]
    return float("nan") if value is None else value


def part_values(cache, Xscore: np.ndarray, seed: int = 0) -> dict:
    """Each default part fitted as the package fits it, from one cached fit: its values on the scored
    rows (``NAME``), on the rows it was fitted on (``NAME@fit``, for its centre and spread), on the
    sample of all rows (``NAME@all``), and its cleaning signal (``cleaning:NAME``)."""
    kept_rows, all_rows = cache["kept/reference"], cache["mixed/reference"]
    errors = {suffix: {kind: cache[f"mixed/{kind}{suffix}"] for kind in ("cosine", "l2")} for suffix in ("", "@ref")}
    kept_errors = {kind: cache[f"kept/{kind}@ref"] for kind in ("cosine", "l2")}
    all_keys, kept_keys = _row_keys(all_rows), _row_keys(kept_rows)
    kept = np.isin(all_keys, kept_keys)  # which rows of the sample the cleaning kept
    half = np.random.default_rng(seed + 1).permutation(len(kept_rows)) < len(kept_rows) // 2
    judged = ~np.isin(all_keys, kept_keys[half])  # all but the half a kept part grows on
    out = {}
    for name in DEFAULT_PARTS:
        part = score_parts.make(name, n_neighbors=DEFAULTS["n_neighbors"])
        on_kept = part.fitted_on == "kept"
        part.fit(kept_rows if on_kept else all_rows, seed)
        out[name] = part.values(Xscore, errors[""])
        out[f"{name}@all"] = part.values(all_rows, errors["@ref"])
        out[f"{name}@fit"] = part.values(kept_rows, kept_errors) if on_kept else out[f"{name}@all"]
        if on_kept:
            grown = score_parts.make(name, n_neighbors=DEFAULTS["n_neighbors"]).fit(kept_rows[half], seed)
            out[f"cleaning:{name}"] = auroc(~kept[judged], grown.values(all_rows[judged], errors["@ref"]))
        else:
            out[f"cleaning:{name}"] = auroc(~kept, out[f"{name}@all"])
    return out


def _row_keys(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def weighted_score(values: dict, weights: dict[str, float]) -> np.ndarray:
    """The default score (parts.combine, each part's centre and spread over the rows it was fitted on)
    with the standardised parts weighted by ``weights`` (a part left out: weight 0)."""
    names = tuple(p for p in DEFAULT_PARTS if weights.get(p, 1.0) > 0 or not score_parts.PARTS[p].standardised)
    centers, scales = zip(*(scoring.robust_scale(values[f"{p}@fit"]) for p in names))
    w = np.array([weights.get(p, 1.0) for p in names], dtype=np.float64)
    return score_parts.combine([values[p] for p in names], names, np.array(centers), np.array(scales), w)


def set_row(name: str, family: str, y: np.ndarray, values: dict) -> dict:
    """One CSV row: each part's AUROC and signals, and each variant's AUROC."""
    row = {"dataset": name, "family": family}
    for p in DEFAULT_PARTS:
        row[f"auroc:{p}"] = auroc(y, values[p])
        row[f"cleaning:{p}"] = values[f"cleaning:{p}"]
        row[f"tail:{p}"], row[f"skew:{p}"] = tail(values[f"{p}@all"]), float(skew(values[f"{p}@all"]))
    row["default"] = auroc(y, weighted_score(values, {}))
    for signal in SIGNALS:
        strength = {p: row[f"{signal}:{p}"] for p in STANDARDISED}
        first = max(STANDARDISED, key=lambda p: np.nan_to_num(strength[p], nan=-np.inf))
        positive = {p: max(np.nan_to_num(s, nan=0.0), 1e-3) for p, s in strength.items()}
        row[f"weights by {signal}"] = auroc(y, weighted_score(values, positive))
        row[f"first by {signal}"] = auroc(y, weighted_score(values, {p: float(p == first) for p in STANDARDISED}))
    row["best part (labels)"] = max(row[f"auroc:{p}"] for p in STANDARDISED)
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}


def table(csv_path: Path, seed: int) -> str:
    """The markdown tables of a CSV this script wrote, for the parts its rows hold (the default's when it ran)."""
    rows = [r for r in csv.DictReader(csv_path.open())]
    families = sorted({r["family"] for r in rows})
    parts = [column[len("auroc:"):] for column in rows[0] if column.startswith("auroc:")]
    standardised = [p for p in parts if score_parts.PARTS[p].standardised]

    def mean_of(column, members):
        return float(np.mean([float(r[column]) for r in members]))

    lines = [f"# Which part to trust, without labels (SPLIT_SEED {seed}, tuning half, seed 0)", "",
             "`python bench/part_choice.py` (see its docstring). Mean AUROC by family and the mean of family means; "
             "`best part (labels)` is a ceiling that needs the labels.", "",
             "| | " + " | ".join(families) + " | mean of family means |", "|---|" + "---:|" * (len(families) + 1)]
    for column in (*(f"auroc:{p}" for p in parts), *VARIANTS):
        means = [mean_of(column, [r for r in rows if r["family"] == f]) for f in families]
        lines.append(f"| {column.replace('auroc:', '')} alone |" if column.startswith("auroc:") else f"| {column} |")
        lines[-1] += " " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.4f} |"
    best = [max(standardised, key=lambda p: float(r[f"auroc:{p}"])) for r in rows]
    fixed = max(standardised, key=best.count)
    lines += ["", f"How often the part a signal ranks first is the set's best of {', '.join(standardised)} "
              f"({len(rows)} sets; always {fixed}: {best.count(fixed) / len(rows):.2f}):", "",
              "| signal | first is best |", "|---|---:|"]
    for signal in SIGNALS:
        firsts = [max(standardised, key=lambda p: np.nan_to_num(float(r[f"{signal}:{p}"]), nan=-np.inf)) for r in rows]
        lines.append(f"| {signal} | {np.mean([f == b for f, b in zip(firsts, best)]):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = exploration_args(__doc__, "part_choice", cached=True)
    csv_path = panel.RESULTS / f"part_choice_split{args.split_seed}.csv"
    if not args.table_only:
        warnings.filterwarnings("ignore")
        rows = []
        for name, family, Xscore, y in scored_tuning_sets(args.split_seed, args.data_dir):
            values = part_values(np.load(args.cache / f"{name}_s0.npz"), Xscore)
            rows.append(set_row(name, family, y, values))
            print(name, {k: v for k, v in rows[-1].items() if k in VARIANTS}, flush=True)
        with csv_path.open("w", newline="") as out:
            writer = csv.DictWriter(out, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (panel.RESULTS / f"part_choice_split{args.split_seed}.md").write_text(table(csv_path, args.split_seed))


if __name__ == "__main__":
    main()
