"""Tabular panel: every ODDS/ADBench dataset in shared/data/odds_adbench, deepuad vs baselines.

    python bench/odds_panel.py --workdir runs/odds

Fully unsupervised (fit and score the same rows), one seed. Each dataset is extracted with
min-max scaling; deepuad runs with its defaults except the network, which is sized to the
data (encoder widths ceil(d/2), ceil(d/4): the KDDCUP net 60-30-10 would be over-complete on
3 columns) and the same for the plain-autoencoder baseline; 100 epochs, batch 256. DAGMM: its own
network (deepuad.baselines), 50 epochs. Ties share the average rank.
Results: bench/results/odds_runs.csv and bench/results/odds.md (AUROC %, with a mean-rank row).

Smoke runs (tests/test_bench_smoke.py): ``--datasets`` picks datasets by file stem, ``--epochs N``
replaces the epoch budgets (100 for deepuad and ae, 50 for DAGMM), ``--results``/``--workdir`` keep
outputs out of the repository, e.g.

    python bench/odds_panel.py --datasets 4_breastw --methods deepuad iforest --epochs 1 --workdir /tmp/odds --results /tmp/odds
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).parent))
from kddcup import deepuad  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "odds_adbench"
RESULTS = Path(__file__).parent / "results"
FIELDS = ["dataset", "rows", "features", "anomaly_share", "method", "auroc", "auprc", "seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("runs/odds"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--methods", nargs="+", default=["deepuad", "iforest", "ocsvm", "ae", "dagmm"])
    parser.add_argument("--max-rows", type=int, default=100_000, help="skip larger datasets (http: 567k rows)")
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets (file stems, e.g. 4_breastw) [default: all]")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget of deepuad, ae and dagmm (smoke runs) [default: 100, DAGMM 50]")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    csv_path = args.results / "odds_runs.csv"
    with csv_path.open("w", newline="") as out:
        csv.DictWriter(out, FIELDS).writeheader()
    files = sorted(SHARED.glob("*.npz"), key=lambda p: np.load(p)["X"].shape[0])
    if args.datasets:
        missing = set(args.datasets) - {p.stem for p in files}
        if missing:
            parser.error(f"no such dataset in {SHARED}: {', '.join(sorted(missing))}")
        files = [p for p in files if p.stem in args.datasets]
    for path in files:
        data = np.load(path)
        n, d = data["X"].shape
        if n > args.max_rows:
            continue
        name = path.stem
        features = str(args.workdir / f"{name}.features.h5")
        deepuad("extract", str(path), "-o", features)
        net = ["--layers", f"{math.ceil(d / 2)},{max(1, math.ceil(d / 4))}", "--epochs", str(args.epochs or 100), "--batch-size", "256"]
        for method in args.methods:
            start = time.perf_counter()
            if method == "deepuad":
                clusters, model = str(args.workdir / f"{name}.clusters.h5"), str(args.workdir / f"{name}.model.h5")
                deepuad("cluster", features, "-o", clusters)
                deepuad("train", features, clusters, *net, "-o", model)
                summary, _ = deepuad("score", model, features, "-o", str(args.workdir / f"{name}.scores.h5"))
            else:
                summary, _ = deepuad("baseline", features, "--method", method, "-o", str(args.workdir / f"{name}.{method}.h5"),
                                     *(net if method == "ae" else ["--epochs", str(args.epochs or 50)] if method == "dagmm" else []))
            row = {"dataset": name, "rows": n, "features": d, "anomaly_share": round(float(np.mean(data["y"])), 4),
                   "method": method, "auroc": summary["auroc"], "auprc": summary["auprc"],
                   "seconds": round(time.perf_counter() - start, 1)}
            with csv_path.open("a", newline="") as out:
                csv.DictWriter(out, FIELDS).writerow(row)
            write_table(csv_path, args.results / "odds.md")


def write_table(csv_path: Path, md_path: Path) -> None:
    rows = list(csv.DictReader(csv_path.open()))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    auroc = {(r["dataset"], r["method"]): float(r["auroc"]) * 100 for r in rows}
    lines = ["# ODDS / ADBench tabular panel: AUROC in % (fully unsupervised, seed 0)", "",
             "Regenerate: `python bench/odds_panel.py`. Rank 1 = best AUROC on that dataset; the mean rank "
             "is over the datasets where every method finished.", "",
             "| dataset | rows | d | anomalies | " + " | ".join(methods) + " |", "|---|---|---|---|" + "---|" * len(methods)]
    complete, ranks = [], []
    for name in names:
        info = next(r for r in rows if r["dataset"] == name)
        values = [auroc.get((name, m)) for m in methods]
        best = max(v for v in values if v is not None)
        cells = [("" if v is None else (f"**{v:.1f}**" if v == best else f"{v:.1f}")) for v in values]
        lines.append(f"| {name} | {info['rows']} | {info['features']} | {float(info['anomaly_share']):.3f} | " + " | ".join(cells) + " |")
        if None not in values:
            ranks.append(rankdata(-np.array(values)))  # ties share the average rank
            complete.append(name)
    if ranks:
        mean = np.mean(ranks, axis=0)
        lines.append(f"| **mean rank** ({len(complete)} datasets) | | | | " + " | ".join(f"{v:.2f}" for v in mean) + " |")
    md_path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
