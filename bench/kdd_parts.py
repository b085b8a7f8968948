"""Where deepuad's score wins and loses on full-size KDDCUP: each part of a trained model's score alone.

    python bench/kdd_table.py --methods deepuad --workdir runs/kdd_table ...   # trains the models
    python bench/kdd_parts.py --workdir runs/kdd_table                         # -> bench/results/kdd_parts.md, .csv

For every split folder ``c<C>_s<S>`` of the workdir that holds deepuad's ``model.h5`` and the test half
``test.features.h5`` (the layout bench/kdd_table.py writes), the model scores the test half with each part
of its score alone, then with the default (combined) score; AUROC and AUPRC of each:

  cosine     the paper's 1 - cos(x, x_hat)           l2         ||x - x_hat||^2
  iforest    the isolation forest the model carries (grown on its kept rows)
  knn        mean distance to the 5 nearest of the model's reference rows (kept rows)
  knn-code   the same in the bottleneck code space (codes of the test rows vs codes of the reference rows)
  combined   what ``deepuad score`` reports (the default: (z(log l2) + 2 z(iforest)) / 3)

It also reports the 95th percentile of l2 over the reference rows: a kept row the network never trained on
reconstructs far worse than the rest.
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
RESULTS = Path(__file__).parent / "results"
PARTS = ("cosine", "l2", "iforest", "knn", "knn-code", "combined")


def part_scores(model_path: Path, test_path: Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """(scores of each part on the test half, its labels, facts about the model)."""
    from deepuad.artifacts.features import load_features
    from deepuad.estimators import scoring
    from deepuad.estimators.autoencoder import reconstruction_errors
    from deepuad.stages._common import load_model

    detector, _ = load_model(model_path)
    test = load_features(test_path)
    X = test["X"]
    k = int(detector.n_neighbors)
    codes, cosine, l2 = reconstruction_errors(detector.model_, X)
    reference_codes, _, reference_l2 = reconstruction_errors(detector.model_, detector.reference_)
    scores = {"cosine": cosine, "l2": l2, "iforest": scoring.forest_scores(next(p for p in detector.parts_ if p.name == "iforest").forest_, X),
              "knn": scoring.knn_distances(detector.reference_, X, k), "knn-code": scoring.knn_distances(reference_codes, codes, k),
              "combined": detector.decision_function(X)}
    facts = {"epochs": detector.epoch_, "stop_reason": "converged" if detector.converged_ else "epoch budget",
             "reference_l2_p95": float(np.percentile(reference_l2, 95))}
    return scores, np.asarray(test["y"]).astype(int), facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="bench/kdd_table.py's --workdir")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows = []
    for folder in sorted(args.workdir.glob("c*_s*")):
        match = re.fullmatch(r"c(\d+)_s(\d+)", folder.name)
        if not match or not (folder / "model.h5").exists() or not (folder / "test.features.h5").exists():
            continue
        scores, y, facts = part_scores(folder / "model.h5", folder / "test.features.h5")
        row = {"contamination": int(match[1]), "seed": int(match[2]), **facts}
        for name in PARTS:
            row[f"{name} auroc"] = roc_auc_score(y, scores[name])
            row[f"{name} auprc"] = average_precision_score(y, scores[name])
        print(folder.name, "  ".join(f"{n} {row[f'{n} auroc']:.3f}" for n in PARTS), flush=True)
        rows.append(row)
    if not rows:
        sys.exit(f"no c<C>_s<S> folder with model.h5 and test.features.h5 under {args.workdir}")
    rows.sort(key=lambda r: (r["contamination"], r["seed"]))
    args.results.mkdir(parents=True, exist_ok=True)
    fields = ["contamination", "seed", "epochs", "stop_reason", "reference_l2_p95"] + [f"{n} {m}" for n in PARTS for m in ("auroc", "auprc")]
    with (args.results / "kdd_parts.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fields)
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    lines = ["# The parts of deepuad's score on full-size KDDCUP", "",
             ("Regenerate: `python bench/kdd_parts.py --workdir W` after `python bench/kdd_table.py --methods deepuad "
              "--workdir W` (the docstring defines each part). AUROC / AUPRC in % on the test half, one trained model "
              "per row; \"ref l2 p95\": the 95th percentile of l2 over the model's reference (kept) rows."), "",
             "| contamination | seed | epochs | ref l2 p95 | " + " | ".join(PARTS) + " |", "|---|---|---|---|" + "---|" * len(PARTS)]
    for r in rows:
        lines.append(f"| {r['contamination']} % | {r['seed']} | {r['epochs']} | {r['reference_l2_p95']:.2g} | "
                     + " | ".join(f"{100 * r[f'{n} auroc']:.1f} / {100 * r[f'{n} auprc']:.1f}" for n in PARTS) + " |")
    lines += ["", "Means over seeds:", "", "| contamination | " + " | ".join(PARTS) + " |", "|---|" + "---|" * len(PARTS)]
    for c in sorted({r["contamination"] for r in rows}):
        part = [r for r in rows if r["contamination"] == c]
        lines.append(f"| {c} % (n={len(part)}) | " + " | ".join(
            f"{100 * np.mean([r[f'{n} auroc'] for r in part]):.1f} / {100 * np.mean([r[f'{n} auprc'] for r in part]):.1f}"
            for n in PARTS) + " |")
    (args.results / "kdd_parts.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
