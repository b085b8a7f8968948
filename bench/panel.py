"""The panel: deepuad's defaults against the detectors users compare it with, on every data set we hold.

    python bench/panel.py                      # everything; appends to bench/results/panel.csv, resumable
    python bench/panel.py --resume             # carry on after an interruption (skips finished runs)
    python bench/panel.py --table-only         # rewrite panel.md from panel.csv

Data sets (all min-max scaled, as `deepuad extract` does for tables and arrays):
* every ADBench "Classical" set in ../shared/data/odds_adbench/ (fit and score the same rows; another
  folder of <number>_<name>.npz files with --adbench-dir, as CI's smoke run does with generated sets);
* KDDCUP99 under the paper's protocol at 5, 10 and 20 % (bench/kddcup.py's split: fit on the train
  half, score the test half);
* CIFAR-10 ResNet-18 embeddings, classes 0, 4 and 6 normal (ADBench; fit and score the same rows);
* raw MNIST (t10k), digit 4 normal, the other digits sampled evenly to 5 %.
Each set is subsampled (seeded, the same rows for every method) to at most --max-rows rows per
side; the size used is in the CSV. A set whose subsample holds no anomaly is skipped (at 2,000 rows:
smtp, 30 anomalies in 95,156 rows). "anomalies" in the tables is the share among the rows scored
(for KDDCUP the test half, about 19 %; the train half holds 5, 10 or 20 %).

Halves: ADBench sets with an odd number, KDDCUP 5 and 20 %, CIFAR 0 and 6 are the "tuning" half
(defaults were chosen on it), the rest the "held-out" half; the tables report both.

Methods: deepuad (defaults); deepuad-paper (the paper's literal reading: percentile over clusters
for both selections, tol 0, the cosine score); Isolation Forest (scikit-learn); k-NN (PyOD KNN,
k = 5); ECOD (PyOD); PyOD AutoEncoder (its defaults); DAGMM (deepuad.estimators.baselines, 50 epochs);
Deep Isolation Forest (DeepOD; `pip install --no-deps deepod tqdm`: deepod 0.4.1 pins an old torch).
Random methods run with every --seeds seed, deterministic ones (k-NN, ECOD) once. A method whose
package is missing is skipped and says so. One thread for everything.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import rankdata, wilcoxon  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
FIELDS = ["dataset", "half", "rows_fit", "rows_scored", "features", "anomaly_share", "method", "seed", "auroc", "auprc", "seconds",
          "estimated_share"]
RANDOM_METHODS = ("deepuad", "deepuad-paper", "iforest", "pyod-ae", "dagmm", "dif")
ALL_METHODS = ("deepuad", "deepuad-paper", "iforest", "knn", "ecod", "pyod-ae", "dagmm", "dif")


# ----------------------------------------------------------------------------- data sets
def _minmax(fit: np.ndarray, *others: np.ndarray):
    low, high = fit.min(axis=0), fit.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return [((a - low) / span).astype(np.float32) for a in (fit, *others)]


def _cap(X, y, max_rows, seed=0):
    if len(X) <= max_rows:
        return X, y
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
    return X[rows], y[rows]


def adbench(path: Path, max_rows: int):
    data = np.load(path)
    X, y = _cap(np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int), max_rows)
    (X,) = _minmax(X)
    return X, y, X, y


def kddcup(contamination: float, max_rows: int):
    sys.path.insert(0, str(Path(__file__).parent))
    from kddcup import DATA  # the protocol's data folder

    names = [line.split(":")[0] for line in (DATA / "kddcup.names").read_text().splitlines()[1:] if ":" in line]
    rows = [line.split(",") for line in gzip.open(DATA / "kddcup.data_10_percent.gz", "rt").read().splitlines()]
    symbolic = [names.index(c) for c in ("protocol_type", "service", "flag")]
    is_anomaly = np.array([r[-1] == "normal." for r in rows])
    numeric = np.array([[float(v) for i, v in enumerate(r[:-1]) if i not in symbolic] for r in rows])
    onehot = []
    for column in symbolic:
        values = np.array([r[column] for r in rows])
        onehot.append((values[:, None] == np.unique(values)[None, :]).astype(np.float64))
    X = np.hstack([numeric, *onehot])
    # bench/kddcup.py's split (seed 0): 50/50 at random; the train half keeps every attack row and
    # "normal." rows (the anomaly class) sampled to the contamination
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    train_half, test_half = np.sort(order[: len(rows) // 2]), np.sort(order[len(rows) // 2 :])
    attacks, anomalies = train_half[~is_anomaly[train_half]], train_half[is_anomaly[train_half]]
    wanted = int(round(contamination / (1 - contamination) * len(attacks)))
    train = np.sort(np.concatenate([attacks, rng.choice(anomalies, size=min(wanted, len(anomalies)), replace=False)]))
    Xtr, ytr = _cap(X[train], is_anomaly[train].astype(int), max_rows)
    Xte, yte = _cap(X[test_half], is_anomaly[test_half].astype(int), max_rows, seed=1)
    Xtr, Xte = _minmax(Xtr, Xte)
    return Xtr, ytr, Xte, yte


def cifar(k: int, max_rows: int):
    return adbench(SHARED / "image_embeddings" / "CV_by_ResNet18" / f"CIFAR10_{k}.npz", max_rows)


def mnist(max_rows: int):
    folder = SHARED / "mnist"
    images = np.frombuffer(gzip.open(folder / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 784)
    labels = np.frombuffer(gzip.open(folder / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    rng = np.random.default_rng(0)
    normal = np.flatnonzero(labels == 4)
    n_anomalies = int(round(0.05 / 0.95 * len(normal)))
    others = [np.flatnonzero(labels == d) for d in range(10) if d != 4]
    per_digit = np.full(9, n_anomalies // 9) + (np.arange(9) < n_anomalies % 9)
    anomalies = np.concatenate([rng.choice(o, size=n, replace=False) for o, n in zip(others, per_digit)])
    rows = np.sort(np.concatenate([normal, anomalies]))
    X, y = _cap(images[rows].astype(np.float64) / 255.0, (labels[rows] != 4).astype(int), max_rows)
    return X.astype(np.float32), y, X.astype(np.float32), y


def datasets(max_rows: int, adbench_dir: Path = SHARED / "odds_adbench"):
    """(name, half, loader) for every set; loaders are called only for the sets that run."""
    out = []
    for path in sorted(adbench_dir.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0])):
        number = int(path.stem.split("_")[0])
        out.append((path.stem, "tuning" if number % 2 else "held-out", lambda p=path: adbench(p, max_rows)))
    for c in (5, 10, 20):
        out.append((f"kddcup_{c}", "tuning" if c != 10 else "held-out", lambda c=c: kddcup(c / 100, max_rows)))
    for k in (0, 4, 6):
        out.append((f"cifar10_{k}", "tuning" if k != 4 else "held-out", lambda k=k: cifar(k, max_rows)))
    out.append(("mnist_4", "held-out", lambda: mnist(max_rows)))
    return out


# ----------------------------------------------------------------------------- methods
def run_method(method: str, Xfit: np.ndarray, Xscore: np.ndarray, seed: int, epochs: int | None):
    """(scores of Xscore, higher = more anomalous; the anomaly share the method estimated, or None)
    from ``method`` fitted on Xfit."""
    same = Xscore is Xfit
    if method in ("deepuad", "deepuad-paper"):
        from deepuad.estimators.detector import DeepUAD
        from deepuad.estimators.params import PAPER_READING

        options = {} if method == "deepuad" else dict(PAPER_READING)
        if epochs is not None:
            options["epochs"] = epochs
        detector = DeepUAD(seed=seed, **options).fit(Xfit)
        return (detector.decision_scores_ if same else detector.decision_function(Xscore)), detector.contamination_
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        return -IsolationForest(random_state=seed).fit(Xfit).score_samples(Xscore), None
    if method == "dagmm":
        from deepuad.estimators.baselines import DAGMMDetector

        return DAGMMDetector(epochs=epochs or 50, random_state=seed).fit(Xfit).decision_function(Xscore), None
    if method in ("knn", "ecod", "pyod-ae"):
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.ecod import ECOD
        from pyod.models.knn import KNN

        model = {"knn": lambda: KNN(n_neighbors=5), "ecod": lambda: ECOD(),
                 "pyod-ae": lambda: AutoEncoder(random_state=seed, verbose=0, device="cpu",
                                                **({"epoch_num": epochs} if epochs else {}))}[method]()
        model.fit(Xfit)
        return (model.decision_scores_ if same else model.decision_function(Xscore)), None
    if method == "dif":
        from deepod.models.tabular import DeepIsolationForest

        model = DeepIsolationForest(random_state=seed, verbose=0, device="cpu", **({"epochs": epochs} if epochs else {}))
        model.fit(Xfit)
        return model.decision_function(Xscore), None
    raise ValueError(f"unknown method {method}")


def available(method: str) -> bool:
    package = {"knn": "pyod", "ecod": "pyod", "pyod-ae": "pyod", "dif": "deepod"}.get(method)
    if package is None:
        return True
    try:
        __import__(package)
        return True
    except ImportError:
        return False


# ----------------------------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for panel.csv and panel.md")
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    parser.add_argument("--datasets", nargs="+", default=None, help="only these, in this order (e.g. 4_breastw kddcup_5 cifar10_0 mnist_4)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--one-seed", nargs="*", default=[], choices=ALL_METHODS,
                        help="run these random methods with the first seed only (to fit a time budget; the table says so)")
    parser.add_argument("--max-rows", type=int, default=2000, help="subsample every set to at most this many rows per side")
    parser.add_argument("--adbench-dir", type=Path, default=SHARED / "odds_adbench",
                        help="the ADBench sets: <number>_<name>.npz with X and y; odd numbers are the tuning half "
                             "(the CI smoke run points it at generated sets)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget of every deep method (smoke runs) [default: each one's own]")
    parser.add_argument("--resume", action="store_true", help="keep panel.csv and skip the runs it holds")
    parser.add_argument("--table-only", action="store_true", help="only rewrite panel.md from panel.csv")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    args.results.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = args.results / "panel.csv", args.results / "panel.md"
    if args.table_only:
        write_table(csv_path, md_path)
        return
    done = set()
    if args.resume and csv_path.exists():
        done = {(r["dataset"], r["method"], int(r["seed"])) for r in csv.DictReader(csv_path.open())}
    else:
        with csv_path.open("w", newline="") as out:
            csv.DictWriter(out, FIELDS).writeheader()
    methods = [m for m in args.methods if available(m) or print(f"skipped {m}: its package is not installed", flush=True)]
    sets = datasets(args.max_rows, args.adbench_dir)
    if args.datasets:
        unknown = set(args.datasets) - {name for name, _, _ in sets}
        if unknown:
            parser.error(f"unknown data sets: {', '.join(sorted(unknown))}")
        sets = sorted((s for s in sets if s[0] in args.datasets), key=lambda s: args.datasets.index(s[0]))  # in the order given
    from sklearn.metrics import average_precision_score, roc_auc_score

    for name, half, load in sets:
        Xfit, yfit, Xscore, yscore = load()
        if yscore.min() == yscore.max():  # e.g. smtp: 30 anomalies in 95k rows, none left in the subsample
            print(f"{name}: skipped, the {len(yscore)} rows scored hold one class only (AUROC undefined)", flush=True)
            continue
        if Xscore is not Xfit and np.array_equal(Xscore, Xfit):
            Xscore = Xfit
        for method in methods:
            for seed in (args.seeds if method in RANDOM_METHODS and method not in args.one_seed else args.seeds[:1]):
                if (name, method, seed) in done:
                    continue
                start = time.perf_counter()
                scores, estimated_share = run_method(method, Xfit, Xscore, seed, args.epochs)
                scores = np.asarray(scores, dtype=np.float64)
                seconds = time.perf_counter() - start
                finite = np.isfinite(scores)
                scores = np.where(finite, scores, np.nanmax(np.where(finite, scores, np.nan)) if finite.any() else 0.0)
                row = {"dataset": name, "half": half, "rows_fit": len(Xfit), "rows_scored": len(Xscore),
                       "features": Xfit.shape[1], "anomaly_share": round(float(np.mean(yscore)), 4), "method": method,
                       "seed": seed, "auroc": round(float(roc_auc_score(yscore, scores)), 5),
                       "auprc": round(float(average_precision_score(yscore, scores)), 5), "seconds": round(seconds, 2),
                       "estimated_share": "" if estimated_share is None else round(float(estimated_share), 4)}
                with csv_path.open("a", newline="") as out:
                    csv.DictWriter(out, FIELDS).writerow(row)
                print(f"{name:22s} {method:14s} seed {seed}  AUROC {row['auroc']:.3f}  AUPRC {row['auprc']:.3f}  {seconds:6.1f} s",
                      flush=True)
        write_table(csv_path, md_path)


# ----------------------------------------------------------------------------- the tables
def _summaries(rows: list[dict]):
    """{(dataset, method): (mean AUROC, std AUROC, mean AUPRC, mean seconds, n seeds)} and dataset info."""
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["method"]), []).append(r)
    out = {}
    for key, runs in cells.items():
        auroc = np.array([float(r["auroc"]) for r in runs])
        out[key] = (auroc.mean(), auroc.std(), np.mean([float(r["auprc"]) for r in runs]),
                    np.mean([float(r["seconds"]) for r in runs]), len(runs))
    return out


def chance_band(rows: int, anomaly_share: float) -> float:
    """Half-width of the 95 % band that a random ranking's AUROC falls in around 0.5 on a set of
    this size: 1.96 standard deviations of the Mann-Whitney statistic under no signal,
    sqrt((a + n + 1) / (12 a n)) for a anomalies and n normal rows. An AUROC inside the band says
    nothing either way (ALOI's 59 anomalies in 2,000 rows: +-0.075); one below it ranks the labelled
    anomalies as more normal than the normal rows, which no choice of ranking direction in an
    unsupervised method can know to undo."""
    anomalies = max(1, round(anomaly_share * rows))
    normal = max(1, rows - anomalies)
    return 1.96 * np.sqrt((anomalies + normal + 1) / (12 * anomalies * normal))


def below_chance(auroc: float, info_row: dict) -> bool:
    """Is ``auroc`` under 0.5 by more than the chance band of its set (a panel.csv row's sizes)?"""
    return auroc < 0.5 - chance_band(int(info_row["rows_scored"]), float(info_row["anomaly_share"]))


def _half_summary(names: list[str], methods: list[str], cell: dict, info: dict) -> list[str]:
    complete = [n for n in names if all((n, m) in cell for m in methods)]
    if not complete:
        return ["(no data set finished for every method yet)"]
    auroc = np.array([[cell[(n, m)][0] for m in methods] for n in complete])
    ranks = np.array([rankdata(-row) for row in auroc])
    lines = [f"{len(complete)} data sets finished for every method.", "",
             "| | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods),
             "| mean AUROC | " + " | ".join(f"{v:.3f}" for v in auroc.mean(axis=0)) + " |",
             "| mean rank (1 = best) | " + " | ".join(f"{v:.2f}" for v in ranks.mean(axis=0)) + " |",
             "| sets below 0.5 AUROC | " + " | ".join(str(int(v)) for v in (auroc < 0.5).sum(axis=0)) + " |",
             "| sets below chance (under 0.5 by more than the 95 % band of a random ranking) | "
             + " | ".join(str(sum(below_chance(a, info[n]) for a, n in zip(column, complete))) for column in auroc.T) + " |"]
    if "deepuad" in methods:
        own = auroc[:, methods.index("deepuad")]
        lines.append("| deepuad wins / ties / losses against it | " + " | ".join(
            "-" if m == "deepuad" else f"{int((own > auroc[:, j]).sum())} / {int((own == auroc[:, j]).sum())} / {int((own < auroc[:, j]).sum())}"
            for j, m in enumerate(methods)) + " |")
        peers = [j for j, m in enumerate(methods) if m != "deepuad"]
        if peers:
            best = min(peers, key=lambda j: ranks[:, j].mean())
            differences = own - auroc[:, best]
            p = wilcoxon(own, auroc[:, best]).pvalue if np.any(differences != 0) and len(complete) > 1 else float("nan")
            lines += ["", f"Best peer by mean rank: **{methods[best]}**. Wilcoxon signed-rank test, deepuad vs {methods[best]} "
                          f"(per-set AUROC, two-sided): p = {p:.3g}; deepuad's mean AUROC is "
                          f"{own.mean() - auroc[:, best].mean():+.3f} against it."]
    return lines


def _seeds_per_set(rows: list[dict], method: str, names: list[str]) -> str:
    """The seeds ``method`` ran, per set: '<method> 0, 1, 2 on every set', or how many sets ran
    fewer (named when at most 8). The union of seeds over sets would hide a method that ran three
    seeds on a few sets and one on the rest."""
    seeds = {n: sorted({int(r["seed"]) for r in rows if r["method"] == method and r["dataset"] == n}) for n in names}
    seeds = {n: s for n, s in seeds.items() if s}
    most = max(seeds.values(), key=len)
    fewer = [n for n, s in seeds.items() if len(s) < len(most)]
    named = f" ({', '.join(fewer)})" if len(fewer) <= 8 else ""
    return f"{method} {', '.join(map(str, most))} on " + (
        "every set" if not fewer else f"{_sets(len(seeds) - len(fewer))}, fewer on {len(fewer)}{named}")


def _sets(count: int) -> str:
    return f"{count} set" + ("" if count == 1 else "s")


def write_table(csv_path: Path, md_path: Path) -> None:
    rows = list(csv.DictReader(csv_path.open()))
    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in rows)]
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    info = {r["dataset"]: r for r in rows}
    cell = _summaries(rows)
    lines = ["# The panel: deepuad's defaults against its peers", "",
             "Regenerate: `python bench/panel.py` (see its docstring; `--resume` continues an interrupted run). "
             "Fully unsupervised: no method sees a label. AUROC is the mean over seeds "
             "(random methods: every seed in panel.csv; k-NN and ECOD are deterministic). "
             "Every set subsampled to the rows stated, the same rows for every method.", ""]
    for half in ("tuning", "held-out", "all"):
        half_names = [n for n in names if half == "all" or info[n]["half"] == half]
        title = {"tuning": "Tuning half (the defaults were chosen on these sets)",
                 "held-out": "Held-out half (not used to choose anything)", "all": "Both halves"}[half]
        lines += [f"## {title}", ""] + _half_summary(half_names, methods, cell, info) + [""]
    low = [n for n in names if any((n, m) in cell and cell[(n, m)][0] < 0.5 for m in methods)]
    if low:
        lines += ["## Sets where some method is below 0.5 AUROC", "",
                  "The band is where a random ranking's AUROC falls 95 % of the time (`chance_band`); "
                  "an AUROC marked ▼ is below it: that method ranks the labelled anomalies as more normal than the "
                  "normal rows, and only the labels could tell it to turn the ranking round.", "",
                  "| data set | rows | anomalies | chance band | " + " | ".join(methods) + " |",
                  "|---|---|---|---|" + "---|" * len(methods)]
        for n in low:
            r = info[n]
            n_rows, share = int(r["rows_scored"]), float(r["anomaly_share"])
            band = chance_band(n_rows, share)
            texts = ["" if (n, m) not in cell else f"{cell[(n, m)][0]:.3f}" + (" ▼" if below_chance(cell[(n, m)][0], r) else "")
                     for m in methods]
            lines.append(f"| {n} | {n_rows} | {round(share * n_rows)} | 0.5 ± {band:.3f} | " + " | ".join(texts) + " |")
        lines.append("")
    lines += ["## Per data set: AUROC (mean over seeds; deepuad: ± std over seeds)", "",
              "| data set | half | rows | d | anomalies | " + " | ".join(methods) + " |",
              "|---|---|---|---|---|" + "---|" * len(methods)]
    for n in names:
        values = [cell.get((n, m)) for m in methods]
        best = max(v[0] for v in values if v is not None)
        texts = []
        for m, v in zip(methods, values):
            if v is None:
                texts.append("")
                continue
            text = f"{v[0]:.3f}" + (f" ± {v[1]:.3f}" if m == "deepuad" and v[4] > 1 else "")
            texts.append(f"**{text}**" if v[0] == best else text)
        r = info[n]
        lines.append(f"| {n} | {r['half']} | {r['rows_fit']} | {r['features']} | {float(r['anomaly_share']):.3f} | " + " | ".join(texts) + " |")
    lines += ["", "Seeds run per set: " + "; ".join(_seeds_per_set(rows, m, names) for m in methods) + "."]
    lines += ["", "## Per data set: AUPRC (mean over seeds)", "", "| data set | " + " | ".join(methods) + " |",
              "|---|" + "---|" * len(methods)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join("" if (n, m) not in cell else f"{cell[(n, m)][2]:.3f}" for m in methods) + " |")
    lines += ["", "## Per data set: wall time in seconds (fit + score, mean over seeds, one thread)", "",
              "| data set | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join("" if (n, m) not in cell else f"{cell[(n, m)][3]:.1f}" for m in methods) + " |")
    md_path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
