"""Why full-size KDDCUP misses issue 29's goal: the current default's parts, and the scores the forest
grown on the kept rows makes, each scored alone on the test half of the models bench/kdd_table.py trained.

    python bench/kdd_table.py --methods deepuad --workdir runs/kdd_table   # trains the models
    python bench/kdd_parts.py --workdir runs/kdd_table --name 7065c2c      # -> bench/results/kdd_parts_7065c2c.md, .csv

For every split folder ``c<C>_s<S>`` of the workdir that holds deepuad's ``model.h5``, the train half
``train.features.h5`` and the test half ``test.features.h5`` (the layout bench/kdd_table.py writes), the
model's network and cleaning stay as trained, and scores are fitted beside it as DeepUAD.fit fits its own
(the same reference rows and kept rows, drawn from the same seeded generator; Scorer.fit):

  knn, l2, range, tails   the default's parts, each alone (the reference trimmed as the model says)
  default                 what ``deepuad score`` reports (checked: it equals the model's stored score)
  iforest                 the forest grown on the kept rows alone
  knn kept                the k-NN part fitted on the kept rows instead of the reference
  default +forest         the default with the forest beside its parts
  l2 + forest x2          the package's default before issue 29 (``combined``)
  default +rotated        the default with the tails part on the principal axes beside its parts
                          (bench/parts_panel.py's AxesTails: bench/candidates.py's tails-axes)
  default +rotated/2      the same with the two tails parts at weight 1/2 each (tails-axes-half)

and, beside them, the share of anomalies among the rows the model kept (``kept anomalies %``: how well the
cleaning did; the labels are read only here).

AUROC in % on the test half, one trained model per row, and the mean over seeds per contamination.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from deepuad.estimators import parts as score_parts  # noqa: E402
from parts_panel import AxesTails  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# the scores fitted beside the model: (score name, whether its reference is the kept sample), a part or
# score that is not the package's registered here for this script only
score_parts.SCORES.setdefault("distance+tails+forest", ("knn", "l2", "iforest", "range", "tails"))
score_parts.PARTS.setdefault("tails_axes", AxesTails)
score_parts.SCORES.setdefault("distance+tails+rotated", ("knn", "l2", "range", "tails", "tails_axes"))
score_parts.SCORES.setdefault("distance+tails+rotated/2", ("knn", "l2", "range", "tails", "tails_axes"))
score_parts.WEIGHTS.setdefault("distance+tails+rotated/2", {"tails": 0.5, "tails_axes": 0.5})
SCORES = {"knn": ("knn", False), "l2": ("l2", False), "range": ("range", False), "tails": ("tails", False),
          "default": (None, False), "iforest": ("iforest", False), "knn kept": ("knn", True),
          "default +forest": ("distance+tails+forest", False), "l2 + forest x2": ("combined", False),
          "default +rotated": ("distance+tails+rotated", False), "default +rotated/2": ("distance+tails+rotated/2", False)}


def scores_of(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """(each score on the test half, its labels, the share of anomalies among the kept rows in %) for the model
    in ``folder``."""
    from deepuad.artifacts.features import read_features
    from deepuad.estimators.detector import DeepUAD
    from deepuad.estimators.scorer import Scorer

    model = DeepUAD.load(folder / "model.h5")
    train = read_features(folder / "train.features.h5")
    X = train["X"]
    test = read_features(folder / "test.features.h5")
    rows, kept_rows = (score_parts.reference_rows(np.random.default_rng([model.seed, len(model.iterations_)]), among,
                                                  model.reference_size)
                       for among in (np.arange(len(X)), model.selected_))  # as DeepUAD.fit draws them
    out = {}
    for column, (score, on_kept) in SCORES.items():
        if score is None:
            out[column] = model.decision_function(test["X"])
            continue
        reference = kept_rows if on_kept else rows
        scorer = Scorer.fit(score, X, reference, model.seed, model.n_neighbors, model.model_, model.device,
                            kept=np.isin(reference, model.selected_), kept_rows=kept_rows,
                            reference_trim=None if on_kept else model.reference_trim)
        values, _, _ = scorer.values(test["X"], model.model_, model.device)
        out[column] = scorer.scores(values)[0]
    refit = Scorer.fit(model.score, X, rows, model.seed, model.n_neighbors, model.model_, model.device,
                       kept=np.isin(rows, model.selected_), kept_rows=kept_rows, reference_trim=model.reference_trim)
    assert np.allclose(refit.scores(refit.values(test["X"], model.model_, model.device)[0])[0], out["default"], atol=1e-5), \
        "the refitted default differs from the model's score: the draw of the reference rows is not DeepUAD.fit's"
    kept_share = 100 * float(np.mean(np.asarray(train["y"])[model.selected_]))
    return out, np.asarray(test["y"]).astype(int), kept_share


def write_table(rows: list[dict], path: Path, name: str) -> None:
    columns = [*SCORES, "kept anomalies %"]
    lines = [f"# The default's parts and the forest on full-size KDDCUP (models of {name})", "",
             "Regenerate: `python bench/kdd_parts.py` (its docstring defines each column). AUROC in % on the test half, "
             "one trained model per row; the last column is the kept rows' anomaly share in %.", "",
             "| contamination | seed | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for r in rows:
        lines.append(f"| {r['contamination']} % | {r['seed']} | " + " | ".join(f"{float(r[c]):.1f}" for c in columns) + " |")
    lines += ["", "Means over seeds:", "", "| contamination | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for level in sorted({r["contamination"] for r in rows}, key=int):
        chosen = [r for r in rows if r["contamination"] == level]
        lines.append(f"| {level} % (n={len(chosen)}) | " + " | ".join(f"{np.mean([float(r[c]) for r in chosen]):.1f}" for c in columns) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("runs/kdd_table"))
    parser.add_argument("--name", required=True, help="the commit whose models the workdir holds (the files' suffix)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for folder in sorted(args.workdir.iterdir()):
        match = re.fullmatch(r"c(\d+)_s(\d+)", folder.name)
        if not match or not (folder / "model.h5").exists():
            continue
        scores, y, kept_share = scores_of(folder)
        row = {"contamination": match[1], "seed": match[2], **{c: round(100 * roc_auc_score(y, s), 2) for c, s in scores.items()},
               "kept anomalies %": round(kept_share, 2)}
        rows.append(row)
        print(" ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    rows.sort(key=lambda r: (int(r["contamination"]), int(r["seed"])))
    csv_path = args.results / f"kdd_parts_{args.name}.csv"
    with csv_path.open("w", newline="") as out:
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_table(rows, csv_path.with_suffix(".md"), args.name)
    print(f"wrote {csv_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
