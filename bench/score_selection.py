"""How the default score was chosen: candidate scores of one fitted deepuad, on the two halves of ADBench.

    python bench/score_selection.py                 # -> bench/results/panel_selection.md and .csv

For every ADBench "Classical" set in ../shared/data/odds_adbench/ (subsampled to --max-rows rows,
min-max scaled, seed 0), deepuad is fitted once (p0 35, p 30, 100 epochs, network and batch
sized to the data), and every candidate score is computed from that one fit: from the trained
network, its final training set S, and models grown on S. Baselines on all rows: Isolation
Forest and the 5th-nearest-neighbour distance. The default was picked on the *tuning* half
(odd-numbered sets) alone; the held-out half (even numbers) is reported beside it.

Candidates (z(.) = robust z-score over S: (value - median) / IQR):
  cosine       the paper's 1 - cos(x, x_hat)          l2            ||x - x_hat||^2
  knn          mean distance to the 5 nearest rows of S  iforest-S     forest grown on S
  l2+iforest   z(l2) + z(iforest-S)                   log-l2+iforest  z(log l2) + z(iforest-S)   <- default
  l2+knn       z(l2) + z(knn)                          l2+knn+iforest  z(l2) + z(knn) + z(iforest-S)
  log-l2+knn+iforest, rank-l2+knn+iforest (ranks among S instead of z), l2+knn+iforest-all (forest on all rows)
  knn-code     mean distance of the bottleneck code to the codes of the 5 nearest rows of S
  log-l2+knn-code, iforest+knn-code, log-l2+iforest+knn-code   z(log l2), z(iforest-S), z(log knn-code) summed
  log-l2+2x iforest, log-l2+3x iforest   z(log l2) + 2 z(iforest-S), + 3 z(iforest-S): the forest weighted 2/3, 3/4
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "odds_adbench"
RESULTS = Path(__file__).parent / "results"
BASELINES = ["iforest (all rows)", "5-NN (all rows)"]
CANDIDATES = ["cosine", "l2", "knn", "iforest-S", "l2+iforest", "log-l2+iforest", "l2+knn", "l2+knn+iforest",
              "log-l2+knn+iforest", "rank-l2+knn+iforest", "l2+knn+iforest-all",
              "knn-code", "log-l2+knn-code", "iforest+knn-code", "log-l2+iforest+knn-code", "log-l2+2x iforest",
              "log-l2+3x iforest"]


def candidates(X: np.ndarray, seed: int, epochs: int) -> dict[str, np.ndarray]:
    import torch
    from sklearn.ensemble import IsolationForest

    from deepuad.estimators import scoring
    from deepuad.estimators.autoencoder import reconstruction_errors
    from deepuad.estimators.detector import DeepUAD

    det = DeepUAD(seed=seed, epochs=epochs, score="cosine").fit(X)  # the score does not change the training
    S = det.selected_
    codes, cosine, l2 = reconstruction_errors(det.model_, torch.from_numpy(X))
    knn = scoring.knn_distances(X[S], X, 5)
    knn_code = scoring.knn_distances(codes[S], codes, 5)
    forest_S = -IsolationForest(random_state=seed).fit(X[S]).score_samples(X)
    forest_all = -IsolationForest(random_state=seed).fit(X).score_samples(X)

    def z(values):
        center, scale = scoring.robust_scale(values[S])
        return (values - center) / scale

    def rank(values):
        kept = np.sort(values[S])
        return np.searchsorted(kept, values) / len(kept) + np.maximum(0, (values - kept[-1]) / (kept[-1] - kept[0] + 1e-12))

    log = lambda v: np.log(v.astype(np.float64) + 1e-12)  # noqa: E731
    return {"cosine": cosine, "l2": l2, "knn": knn, "iforest-S": forest_S,
            "l2+iforest": z(l2) + z(forest_S), "log-l2+iforest": z(log(l2)) + z(forest_S),
            "l2+knn": z(l2) + z(knn), "l2+knn+iforest": z(l2) + z(knn) + z(forest_S),
            "log-l2+knn+iforest": z(log(l2)) + z(log(knn)) + z(forest_S),
            "rank-l2+knn+iforest": rank(l2) + rank(knn) + rank(forest_S),
            "l2+knn+iforest-all": z(l2) + z(knn) + z(forest_all),
            "knn-code": knn_code, "log-l2+knn-code": z(log(l2)) + z(log(knn_code)),
            "iforest+knn-code": z(forest_S) + z(log(knn_code)),
            "log-l2+iforest+knn-code": z(log(l2)) + z(forest_S) + z(log(knn_code)),
            "log-l2+2x iforest": z(log(l2)) + 2 * z(forest_S), "log-l2+3x iforest": z(log(l2)) + 3 * z(forest_S)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=None, help="only these file stems (smoke runs)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    import torch
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    args.results.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(SHARED.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0])):
        if args.datasets and path.stem not in args.datasets:
            continue
        data = np.load(path)
        X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int)
        if len(X) > args.max_rows:
            keep = np.sort(np.random.default_rng(0).choice(len(X), size=args.max_rows, replace=False))
            X, y = X[keep], y[keep]
        if y.min() == y.max():
            continue
        low, high = X.min(axis=0), X.max(axis=0)
        X = ((X - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)
        start = time.perf_counter()
        row = {"dataset": path.stem, "half": "tuning" if int(path.stem.split("_")[0]) % 2 else "held-out"}
        row["iforest (all rows)"] = roc_auc_score(y, -IsolationForest(random_state=args.seed).fit(X).score_samples(X))
        distances, _ = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X)
        row["5-NN (all rows)"] = roc_auc_score(y, distances[:, 5])
        for name, scores in candidates(X, args.seed, args.epochs).items():
            row[name] = roc_auc_score(y, scores)
        print(f"{path.stem:22s} {time.perf_counter() - start:6.1f} s  " +
              "  ".join(f"{k} {row[k]:.3f}" for k in ("iforest (all rows)", "cosine", "log-l2+iforest")), flush=True)
        rows.append(row)
    columns = ["dataset", "half", *BASELINES, *CANDIDATES]
    with (args.results / "panel_selection.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    lines = ["# How the default score was chosen", "", "Regenerate: `python bench/score_selection.py` (its docstring "
             f"defines every candidate). AUROC, ADBench sets at most {args.max_rows} rows, seed {args.seed}, one deepuad fit "
             "per set (p0 35, p 30, network and batch sized to the data, "
             f"{args.epochs} epochs). Rank 1 = best of the {len(BASELINES) + len(CANDIDATES)} columns.", ""]
    for half in ("tuning", "held-out"):
        part = [r for r in rows if r["half"] == half]
        if not part:
            continue
        names = BASELINES + CANDIDATES
        auroc = np.array([[r[n] for n in names] for r in part])
        ranks = np.array([rankdata(-a) for a in auroc]).mean(axis=0)
        order = np.argsort(ranks)
        lines += [f"## {half} half ({len(part)} sets)" + (": the default was chosen here" if half == "tuning" else ": looked at afterwards"),
                  "", "| score | mean AUROC | mean rank |", "|---|---|---|"]
        lines += [f"| {names[i]} | {auroc[:, i].mean():.3f} | {ranks[i]:.2f} |" for i in order] + [""]
    lines += ["## Per set", "", "| set | half | " + " | ".join(BASELINES + CANDIDATES) + " |", "|---|---|" + "---|" * len(BASELINES + CANDIDATES)]
    lines += [f"| {r['dataset']} | {r['half']} | " + " | ".join(f"{r[n]:.3f}" for n in BASELINES + CANDIDATES) + " |" for r in rows]
    (args.results / "panel_selection.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
