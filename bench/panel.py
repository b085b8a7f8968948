"""The panel: deepuad's candidate configurations against the detectors users compare it with, on six
families of data sets weighted equally.

    python bench/panel.py --half tuning        # the tuning half; appends to bench/results/panel.csv, resumable
    python bench/panel.py --resume ...         # carry on after an interruption (skips finished runs)
    python bench/panel.py --table-only         # rewrite panel.md from panel.csv
    python bench/choose_defaults.py            # the defaults the tuning half picks (the protocol)

Families (every set min-max scaled as a whole, as `deepuad extract` does; fit and score the same
rows except KDDCUP):
* tables: every ADBench "Classical" set in ../shared/data/odds_adbench/ (another folder of
  <number>_<name>.npz files with --adbench-dir, as CI's smoke run does with generated sets);
* images: CIFAR-10 ResNet-18 embeddings with class 0, 4 or 6 normal (ADBench); raw MNIST t10k
  (../shared/data/mnist) and scikit-learn's bundled 8x8 digits (load_digits, no download), each
  of the ten digits normal in turn, the other nine sampled evenly to 5 % of the set;
* text: dense text embeddings (bench/fortunes.py: Debian's fortunes, embedded by all-MiniLM-L6-v2, 384
  columns), each category with at least TEXT_MIN_TEXTS texts normal in turn, the others sampled evenly to
  5 % of the set; present where the fortunes folder is (apt-get install fortunes) and the embeddings are
  cached in runs/text_embeddings or the model's package is installed (bench/requirements.txt);
* kddcup: KDDCUP99 under the paper's protocol at 5, 10 and 20 % (bench/kddcup.py's split: fit on
  the train half, score the test half; the three score the same test rows, so they are one group);
* synthetic: local, global, dependency and clustered anomalies (bench/synthetic.py, after ADBench
  §3.3) planted at 1, 5, 10 and 20 % among the normal rows of BASES: 2_annthyroid, 4_breastw,
  6_cardio, 12_fault, 28_pendigits, 29_Pima, 30_satellite, 47_yeast (low to mid width, raw or
  standardised features, 444 to 6,666 normal rows); at most 0.8 x --max-rows normal rows, the
  same ones at every type and share;
* spikes: in the normal rows of the same BASES (at most --max-rows), 20 rows each get one column
  at 10 x that column's normal range above its maximum. Besides AUROC: spike_recall, the share of
  spiked rows scoring above the 99th percentile of the untouched rows' scores (the goal is 1.0).
Each set is subsampled (seeded, the same rows for every method) to at most --max-rows rows per side.
A set whose rows scored hold one class only is skipped (at 2,000 rows: smtp).

Halves: SPLIT_SEED = 51 assigns groups of sets (a base set's variants, the three KDDCUP levels) at
random to `tuning` or `held-out`, balanced by set count within each family (``split``; KDDCUP is one
group, so one half). A base set's synthetic and spike sets share its half as a table. With the 36
ADBench sets in ../shared/data the tuning half is (`python bench/panel.py --show-split` lists all):
* tables: 6_cardio, 8_celeba, 11_donors, 12_fault, 16_http, 17_InternetAds, 18_Ionosphere,
  21_Lymphography, 25_musk, 27_PageBlocks, 30_satellite, 32_shuttle, 33_skin, 34_smtp, 42_WBC,
  43_WDBC, 46_WPBC, 47_yeast;
* images: cifar10_0, cifar10_6, mnist_1, mnist_4, mnist_5, mnist_6, mnist_9, digits_1, digits_4,
  digits_5, digits_8, digits_9;
* text: the 16 categories with 400+ texts, whatever the seed (TEXT_EXPLORED: bench/text_embeddings.py read
  them before the family joined the panel); the 16 with 100 to 399 texts are held out;
* kddcup: all three (none is held out);
* synthetic and spikes: those built on 6_cardio, 12_fault, 30_satellite and 47_yeast;
and the held-out half every other set. Seed 51 is the ninth split: the first (SPLIT_SEED = 29)
chose the default frozen in 9932c24, the second (31) the one frozen in 885563f, the third (37) the
one frozen in 2aee2a6, the fourth (42) the one frozen in 3d24cf5, the fifth (43) the one frozen in
c484266, the sixth (45) the one frozen in 54d6b38, the seventh (48) the one frozen in 7065c2c, the
eighth (50) the one frozen in f129878 (a second choice on its tuning half, after the first kept the
default); each
one's held-out half ran once (bench/results/panel_split29.md ... panel_split50.md). 51 is the next
seed after 50 whose tuning half holds the KDDCUP group. With eight base sets no split
can keep its bases apart from every earlier split's, and most of its held-out sets were in some
earlier split's held-out half: what the protocol guarantees is that the default is chosen from this
split's tuning half before its held-out half runs. Its tuning half was explored first, its held-out
half not at all. This one chooses among bench/candidates.py's SCORE_CANDIDATES. The protocol:
bench/choose_defaults.py.

Methods: deepuad (the package's defaults), deepuad-paper (PAPER_READING), deepuad:NAME (any
configuration in bench/candidates.py); Isolation Forest (scikit-learn); k-NN (PyOD KNN, k = 5);
ECOD (PyOD); PyOD AutoEncoder (needs tqdm); DAGMM (deepuad.estimators.baselines, its own defaults:
200 epochs; only when named in --methods, see panel_tables.DAGMM_NOTE); Deep Isolation Forest
(DeepOD; `pip install --no-deps deepod tqdm`: deepod 0.4.1 pins an old torch). All at their own
defaults. Random methods run with every --seeds seed, deterministic ones (k-NN, ECOD) once. A
method whose package is missing is skipped and says so. One thread for everything.

Per run the CSV holds AUROC, AUPRC, F1 at the method's own threshold (deepuad's labels_; PyOD,
DeepOD and DAGMM: their default 10 % contamination; Isolation Forest: scikit-learn's "auto"
offset), F1 at the true share (top k, k = the true number of anomalies), the estimated anomaly
share (deepuad's contamination_) and spike_recall (spikes family); bench/panel_tables.py writes
panel.md from it. The data folder is ../shared/data unless --data-dir says otherwise.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import os
import sys
import time
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import fortunes  # noqa: E402
import synthetic  # noqa: E402
from panel_tables import FIELDS, below_chance, chance_band, write_table  # noqa: E402,F401

DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
SPLIT_SEED = 51
BASES = ("2_annthyroid", "4_breastw", "6_cardio", "12_fault", "28_pendigits", "29_Pima", "30_satellite", "47_yeast")
SHARES = (1, 5, 10, 20)  # synthetic anomalies, % of the set
SPIKES = 20  # spiked rows per set
FAMILIES = ("tables", "images", "text", "kddcup", "synthetic", "spikes")
TEXT_MIN_TEXTS = 100  # a fortune category with fewer texts would hold fewer than 5 anomalies
# the text sets bench/text_embeddings.py read after the ninth round's freeze (every category with 400+ texts):
# tuning material whatever the split; the text family's held-out half is every other category
TEXT_EXPLORED = ("art", "computers", "cookie", "definitions", "fortunes", "knghtbrd", "men-women", "miscellaneous",
                 "people", "platitudes", "politics", "science", "songs-poems", "wisdom", "work", "zippy")
PEERS = ("iforest", "knn", "ecod", "pyod-ae", "dagmm", "dif")
DETERMINISTIC = ("knn", "ecod")
METHODS = ("deepuad", "deepuad-paper", *PEERS)
DEFAULT_METHODS = tuple(m for m in METHODS if m != "dagmm")  # panel_tables.DAGMM_NOTE says why


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


def _same(X, y):
    (X,) = _minmax(X)
    return X, y, X, y


def _npz(path: Path):
    data = np.load(path)
    return np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int)


def adbench(path: Path, max_rows: int):
    return _same(*_cap(*_npz(path), max_rows))


def planted(path: Path, kind: str, share: int, max_rows: int):
    X, y = _npz(path)
    normal, _ = _cap(X[y == 0], y[y == 0], int(0.8 * max_rows))
    return _same(*synthetic.plant(normal, kind, share / 100, seed=zlib.crc32(f"{path.stem}+{kind}_{share}".encode())))


def spiked(path: Path, max_rows: int):
    X, y = _npz(path)
    normal, _ = _cap(X[y == 0], y[y == 0], max_rows)
    return _same(*synthetic.spikes(normal, SPIKES, seed=zlib.crc32(path.stem.encode())))


def one_class_normal(X: np.ndarray, labels: np.ndarray, normal_class: int, share: float = 0.05, seed: int = 0):
    """The rows of ``normal_class`` plus the other classes sampled evenly (seeded) to ``share``
    of the result; y = 1 for the other classes."""
    rng = np.random.default_rng(seed)
    normal = np.flatnonzero(labels == normal_class)
    others = [np.flatnonzero(labels == c) for c in np.unique(labels) if c != normal_class]
    n_anomalies = int(round(share / (1 - share) * len(normal)))
    per_class = np.full(len(others), n_anomalies // len(others)) + (np.arange(len(others)) < n_anomalies % len(others))
    anomalies = np.concatenate([rng.choice(o, size=n, replace=False) for o, n in zip(others, per_class)])
    rows = np.sort(np.concatenate([normal, anomalies]))
    return X[rows], (labels[rows] != normal_class).astype(int)


@functools.lru_cache(maxsize=1)
def _mnist_t10k(folder: Path):
    images = np.frombuffer(gzip.open(folder / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 784)
    labels = np.frombuffer(gzip.open(folder / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images.astype(np.float64), labels.astype(int)


def mnist(folder: Path, digit: int, max_rows: int):
    return _same(*_cap(*one_class_normal(*_mnist_t10k(folder), digit), max_rows))


def digits(digit: int, max_rows: int):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _same(*_cap(*one_class_normal(bunch.data.astype(np.float64), bunch.target, digit), max_rows))


@functools.lru_cache(maxsize=1)
def _kddcup_rows(folder: Path):
    names = [line.split(":")[0] for line in (folder / "kddcup.names").read_text().splitlines()[1:] if ":" in line]
    rows = [line.split(",") for line in gzip.open(folder / "kddcup.data_10_percent.gz", "rt").read().splitlines()]
    symbolic = [names.index(c) for c in ("protocol_type", "service", "flag")]
    is_anomaly = np.array([r[-1] == "normal." for r in rows])
    numeric = np.array([[float(v) for i, v in enumerate(r[:-1]) if i not in symbolic] for r in rows])
    onehot = []
    for column in symbolic:
        values = np.array([r[column] for r in rows])
        onehot.append((values[:, None] == np.unique(values)[None, :]).astype(np.float64))
    return np.hstack([numeric, *onehot]), is_anomaly


def kddcup(folder: Path, contamination: float, max_rows: int):
    X, is_anomaly = _kddcup_rows(folder)
    # bench/kddcup.py's split (seed 0): 50/50 at random; the train half keeps every attack row and
    # "normal." rows (the anomaly class) sampled to the contamination
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train_half, test_half = np.sort(order[: len(X) // 2]), np.sort(order[len(X) // 2 :])
    attacks, anomalies = train_half[~is_anomaly[train_half]], train_half[is_anomaly[train_half]]
    wanted = int(round(contamination / (1 - contamination) * len(attacks)))
    train = np.sort(np.concatenate([attacks, rng.choice(anomalies, size=min(wanted, len(anomalies)), replace=False)]))
    Xtr, ytr = _cap(X[train], is_anomaly[train].astype(int), max_rows)
    Xte, yte = _cap(X[test_half], is_anomaly[test_half].astype(int), max_rows, seed=1)
    Xtr, Xte = _minmax(Xtr, Xte)
    return Xtr, ytr, Xte, yte


@functools.lru_cache(maxsize=1)
def _text_vectors(folder: Path) -> dict[str, np.ndarray]:
    """Every category's embeddings (bench/fortunes.py), read once for all the text sets of a run."""
    return fortunes.embeddings(fortunes.texts(folder, TEXT_MIN_TEXTS))


def text(category: str, max_rows: int, folder: Path | None = None):
    """One fortune category normal, 5 % from the others with at least TEXT_MIN_TEXTS texts (bench/fortunes.py)."""
    X, y = fortunes.one_set(_text_vectors(folder or fortunes.FOLDER), category)
    X, y = _cap(X, y, max_rows)
    return _same(X, y)


def catalog(max_rows: int, data_dir: Path, adbench_dir: Path, bases=BASES, fortunes_dir: Path | None = None):
    """(name, family, group, loader) for every set; loaders are called only for the sets that run.
    ``group``: the sets that must share a half (a base set's variants; the three KDDCUP levels)."""
    tables = sorted(adbench_dir.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0]))
    out = [(p.stem, "tables", p.stem, lambda p=p: adbench(p, max_rows)) for p in tables]
    out += [(f"cifar10_{k}", "images", f"cifar10_{k}",
             lambda k=k: adbench(data_dir / "image_embeddings" / "CV_by_ResNet18" / f"CIFAR10_{k}.npz", max_rows)) for k in (0, 4, 6)]
    out += [(f"mnist_{d}", "images", f"mnist_{d}", lambda d=d: mnist(data_dir / "mnist", d, max_rows)) for d in range(10)]
    out += [(f"digits_{d}", "images", f"digits_{d}", lambda d=d: digits(d, max_rows)) for d in range(10)]
    folder = fortunes.FOLDER if fortunes_dir is None else fortunes_dir
    categories = fortunes.texts(folder, TEXT_MIN_TEXTS) if folder.is_dir() else {}
    categories = categories if fortunes.can_embed(categories) else {}  # the family is there only where it can be built
    out += [(f"text_{c}", "text", f"text_{c}", lambda c=c: text(c, max_rows, folder)) for c in categories]
    out += [(f"kddcup_{c}", "kddcup", "kddcup", lambda c=c: kddcup(data_dir / "kddcup99", c / 100, max_rows)) for c in (5, 10, 20)]
    present = [p for p in tables if p.stem in bases]
    out += [(f"{p.stem}+{kind}_{share}", "synthetic", p.stem, lambda p=p, k=kind, s=share: planted(p, k, s, max_rows))
            for p in present for kind in synthetic.KINDS for share in SHARES]
    out += [(f"{p.stem}+spikes", "spikes", p.stem, lambda p=p: spiked(p, max_rows)) for p in present]
    return out


def split(sets, seed: int = SPLIT_SEED) -> dict[str, str]:
    """{set name: "tuning" or "held-out"}. Groups go whole to one half. Families are taken in
    turn, the ones whose groups reach into others first (synthetic, spikes, kddcup, images,
    tables); within a family the groups not yet placed are shuffled (seeded) and each goes to the
    half holding fewer of the family's sets so far (a coin on ties). The text family is not drawn: its sets
    in TEXT_EXPLORED were read before any split held them, so they are tuning material, and the rest are
    held out."""
    rng = np.random.default_rng(seed)
    half_of: dict[str, str] = {group: "tuning" if group.removeprefix("text_") in TEXT_EXPLORED else "held-out"
                               for _, family, group, *_ in sets if family == "text"}
    for family in ("synthetic", "spikes", "kddcup", "images", "tables"):
        members = [(name, group) for name, fam, group, *_ in sets if fam == family]
        groups = list(dict.fromkeys(g for _, g in members if g not in half_of))
        for index in rng.permutation(len(groups)):
            counts = {h: sum(half_of.get(g) == h for _, g in members) for h in ("tuning", "held-out")}
            if counts["tuning"] == counts["held-out"]:
                half_of[groups[index]] = "tuning" if rng.random() < 0.5 else "held-out"
            else:
                half_of[groups[index]] = min(counts, key=counts.get)
    return {name: half_of[group] for name, _, group, *_ in sets}


# ----------------------------------------------------------------------------- methods
def deepuad_options(method: str) -> dict | None:
    """DeepUAD's keyword overrides for a deepuad method name, None for a peer."""
    from candidates import CANDIDATES

    if method == "deepuad":
        return dict(CANDIDATES["default"])
    if method == "deepuad-paper":
        return dict(CANDIDATES["paper"])
    if method.startswith("deepuad:"):
        return dict(CANDIDATES[method.split(":", 1)[1]])
    return None


def method_name(text: str) -> str:
    """argparse type: a peer, deepuad, deepuad-paper or deepuad:NAME of bench/candidates.py."""
    from candidates import CANDIDATES

    if text in METHODS or (text.startswith("deepuad:") and text.split(":", 1)[1] in CANDIDATES):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: not one of {', '.join(METHODS)} or deepuad:NAME with NAME "
                                     f"in bench/candidates.py ({', '.join(CANDIDATES)})")


def run_method(method: str, Xfit: np.ndarray, Xscore: np.ndarray, seed: int, epochs: int | None):
    """(scores of Xscore, higher = more anomalous; the anomaly share the method estimated, or None;
    the method's own threshold on those scores, or None) from ``method`` fitted on Xfit."""
    same = Xscore is Xfit
    options = deepuad_options(method)
    if options is not None:
        from deepuad.estimators.detector import DeepUAD

        if epochs is not None:
            options["epochs"] = epochs
        detector = DeepUAD(seed=seed, **options).fit(Xfit)
        scores = detector.decision_scores_ if same else detector.decision_function(Xscore)
        return scores, detector.contamination_, detector.threshold_
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        model = IsolationForest(random_state=seed).fit(Xfit)
        return -model.score_samples(Xscore), None, -model.offset_  # predict(): anomalous where score_samples < offset_
    if method == "dagmm":
        from deepuad.estimators.baselines import DAGMMDetector

        model = DAGMMDetector(random_state=seed, **({"epochs": epochs} if epochs else {})).fit(Xfit)
        return (model.decision_scores_ if same else model.decision_function(Xscore)), None, model.threshold_
    if method in ("knn", "ecod", "pyod-ae"):
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.ecod import ECOD
        from pyod.models.knn import KNN

        model = {"knn": lambda: KNN(n_neighbors=5), "ecod": lambda: ECOD(),
                 "pyod-ae": lambda: AutoEncoder(random_state=seed, verbose=0, device="cpu",
                                                **({"epoch_num": epochs} if epochs else {}))}[method]()
        model.fit(Xfit)
        return (model.decision_scores_ if same else model.decision_function(Xscore)), None, model.threshold_
    if method == "dif":
        from deepod.models.tabular import DeepIsolationForest

        model = DeepIsolationForest(random_state=seed, verbose=0, device="cpu", **({"epochs": epochs} if epochs else {}))
        model.fit(Xfit)
        return model.decision_function(Xscore), None, model.threshold_
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


def measures(y: np.ndarray, scores: np.ndarray, threshold, family: str) -> dict:
    """The CSV's quality columns for one run: AUROC, AUPRC, F1 at the method's threshold (blank
    without one), F1 at the true share (the top k scores, k = the number of anomalies, ties broken
    by row order) and spike_recall (spikes family only)."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    top = np.zeros(len(y), dtype=int)
    top[np.argsort(-scores, kind="stable")[: int(y.sum())]] = 1
    return {"auroc": round(float(roc_auc_score(y, scores)), 5), "auprc": round(float(average_precision_score(y, scores)), 5),
            "f1_default": "" if threshold is None else round(float(f1_score(y, scores > threshold, zero_division=0)), 5),
            "f1_true_share": round(float(f1_score(y, top, zero_division=0)), 5),
            "spike_recall": round(synthetic.spike_recall(scores, y), 5) if family == "spikes" else ""}


# ----------------------------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for panel.csv and panel.md")
    parser.add_argument("--methods", nargs="+", type=method_name, default=list(DEFAULT_METHODS),
                        help=f"any of {', '.join(METHODS)}, or deepuad:NAME (bench/candidates.py) [default: all but dagmm]")
    parser.add_argument("--half", choices=("tuning", "held-out", "both"), default="both", help="run only this half's sets")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--datasets", nargs="+", default=None, help="only these, in this order (e.g. 4_breastw kddcup_5 mnist_4)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-rows", type=int, default=2000, help="subsample every set to at most this many rows per side")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="the shared data folder [default: ../shared/data]")
    parser.add_argument("--adbench-dir", type=Path, default=None,
                        help="the ADBench sets, <number>_<name>.npz with X and y [default: DATA_DIR/odds_adbench]")
    parser.add_argument("--bases", nargs="+", default=list(BASES), help="the tables the synthetic and spike sets are built on")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget of every deep method (smoke runs) [default: each one's own]")
    parser.add_argument("--resume", action="store_true", help="keep panel.csv and skip the runs it holds")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="start panel.csv from this older CSV's runs of the peers and deepuad-paper at --seeds, each "
                             "set's half recomputed by this split (a peer's run does not depend on the split)")
    parser.add_argument("--table-only", action="store_true", help="only rewrite panel.md from panel.csv")
    parser.add_argument("--show-split", action="store_true", help="print each set's family, group and half, and stop")
    args = parser.parse_args()
    sets = catalog(args.max_rows, args.data_dir, args.adbench_dir or args.data_dir / "odds_adbench", args.bases)
    halves = split(sets)
    if args.show_split:
        for name, family, group, _ in sets:
            print(f"{halves[name]:9s} {family:10s} {group:16s} {name}")
        return
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    args.results.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = args.results / "panel.csv", args.results / "panel.md"
    if args.table_only:
        write_table(csv_path, md_path)
        return
    done = set()
    if args.reuse:
        kept = [dict(r, half=halves[r["dataset"]]) for r in csv.DictReader(args.reuse.open())
                if r["method"] in (*PEERS, "deepuad-paper") and int(r["seed"]) in args.seeds and r["dataset"] in halves]
        with csv_path.open("w", newline="") as out:
            writer = csv.DictWriter(out, FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        print(f"{len(kept)} runs reused from {args.reuse}", flush=True)
        write_table(csv_path, md_path)
        return
    if args.resume and csv_path.exists():
        done = {(r["dataset"], r["method"], int(r["seed"])) for r in csv.DictReader(csv_path.open())}
    else:
        with csv_path.open("w", newline="") as out:
            csv.DictWriter(out, FIELDS).writeheader()
    methods = [m for m in args.methods if available(m) or print(f"skipped {m}: its package is not installed", flush=True)]
    if args.datasets:
        unknown = set(args.datasets) - {s[0] for s in sets}
        if unknown:
            parser.error(f"unknown data sets: {', '.join(sorted(unknown))}")
        sets = sorted((s for s in sets if s[0] in args.datasets), key=lambda s: args.datasets.index(s[0]))  # in the order given
    sets = [s for s in sets if s[1] in args.families and args.half in ("both", halves[s[0]])]
    for name, family, _, load in sets:
        Xfit, yfit, Xscore, yscore = load()
        if yscore.min() == yscore.max():  # e.g. smtp: 30 anomalies in 95k rows, none left in the subsample
            print(f"{name}: skipped, the {len(yscore)} rows scored hold one class only (AUROC undefined)", flush=True)
            continue
        if Xscore is not Xfit and np.array_equal(Xscore, Xfit):
            Xscore = Xfit
        for method in methods:
            for seed in (args.seeds[:1] if method in DETERMINISTIC else args.seeds):
                if (name, method, seed) in done:
                    continue
                start = time.perf_counter()
                scores, estimated_share, threshold = run_method(method, Xfit, Xscore, seed, args.epochs)
                seconds = time.perf_counter() - start
                scores = np.asarray(scores, dtype=np.float64)
                finite = np.isfinite(scores)
                scores = np.where(finite, scores, np.nanmax(np.where(finite, scores, np.nan)) if finite.any() else 0.0)
                row = {"dataset": name, "family": family, "half": halves[name], "rows_fit": len(Xfit),
                       "rows_scored": len(Xscore), "features": Xfit.shape[1], "anomaly_share": round(float(np.mean(yscore)), 4),
                       "method": method, "seed": seed, **measures(yscore, scores, threshold, family), "seconds": round(seconds, 2),
                       "estimated_share": "" if estimated_share is None else round(float(estimated_share), 4)}
                with csv_path.open("a", newline="") as out:
                    csv.DictWriter(out, FIELDS).writerow(row)
                print(f"{name:26s} {method:16s} seed {seed}  AUROC {row['auroc']:.3f}  AUPRC {row['auprc']:.3f}  {seconds:6.1f} s",
                      flush=True)
        write_table(csv_path, md_path)


if __name__ == "__main__":
    main()
