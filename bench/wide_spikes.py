"""Are planted spikes seen on wide data? The panel's spikes family plants them in tables of 6 to 36
columns only. This plants them in the normal rows of the sets of a split's tuning half with at
least 60 columns (image embeddings, MNIST and scikit-learn's digits, the wider ADBench tables),
20 rows, one column each at 10 x its normal range above its maximum (bench/synthetic.py), in two
ways:

* ``in the fitted rows``: as bench/panel.py's ``spiked`` (planted, then every column min-max
  scaled, the spikes included, as ``deepuad extract`` scales a file), DeepUAD fitted on those rows;
* ``in new rows``: DeepUAD fitted on the scaled normal rows, the spikes planted in a copy of them
  afterwards (a model scoring a later batch with the scaling it was fitted with: the spike stays
  ten ranges out);

and gives, per score, the share of spiked rows above the 99th percentile of the untouched rows'
scores (issue 29's goal: 1.0 everywhere), with DeepUAD at its defaults but ``score="distance+tails"``
(seed 0), so that every part this measures is fitted on every set:

* ``default``: the package's default score, from a second fit at the package's defaults (``auto``:
  those four parts, or on wide data those parts.resolve takes there);
* each standardised part alone (its robust z-score), the range part alone, and the network's cosine
  error (the paper's h(x)) as a part fitted on the reference as the scorer fits the others (its
  robust z-score over the reference rows the k-NN and tails parts are fitted on);
* ``knn+l2`` and ``knn+cosine``: the mean z-score of the k-NN part and a network part, without the
  per-column parts; ``knn+l2+range``: the first plus the range part;

and the range part's level L (how many ranges beyond the kept rows' range normal rows lie by chance,
parts.OutsideRange).

    python bench/wide_spikes.py --split-seed 45     # -> bench/results/wide_spikes_split45.md

It refuses a split whose held-out half has run (an exploration for a next round). About two minutes.
``wide_spikes_split43.md`` was written by this script as it stood before the ninth round (the score
"distance+forest", no cosine or tails column); ``git log bench/wide_spikes.py`` finds that version.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import synthetic  # noqa: E402
from cleaning_variants import RERUN_HELP, refuse_used_split  # noqa: E402

from deepuad.estimators import scoring  # noqa: E402
from deepuad.estimators.autoencoder import reconstruction_errors  # noqa: E402
from deepuad.estimators.cleaning import tails_trim  # noqa: E402
from deepuad.estimators.detector import DeepUAD  # noqa: E402

MIN_COLUMNS = 60  # a set this wide or wider is planted in
SCORES = ("default", "knn", "l2", "cosine", "tails", "range", "knn+l2", "knn+cosine", "knn+l2+range")


def normal_rows(name: str, data_dir: Path, max_rows: int) -> np.ndarray:
    """The normal rows of a panel set, at most ``max_rows``, unscaled."""
    if name.startswith("mnist_"):
        X, y = panel.one_class_normal(*panel._mnist_t10k(data_dir / "mnist"), int(name.split("_")[1]))
    elif name.startswith("digits_"):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        X, y = panel.one_class_normal(bunch.data.astype(np.float64), bunch.target, int(name.split("_")[1]))
    elif name.startswith("cifar10_"):
        X, y = panel._npz(data_dir / "image_embeddings" / "CV_by_ResNet18" / f"CIFAR10_{name.split('_')[1]}.npz")
    else:
        X, y = panel._npz(data_dir / "odds_adbench" / f"{name}.npz")
    return panel._cap(X[y == 0], y[y == 0], max_rows)[0]


def recalls(X_fit: np.ndarray, X_scored: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Each score's spike recall on ``X_scored`` (spiked rows: ``y``), DeepUAD fitted on ``X_fit``; and
    the range part's level ("L")."""
    detector = DeepUAD(seed=0, score="distance+tails").fit(X_fit)
    values = detector.score_parts(X_scored)
    scorer = detector.scorer_
    z = {p: (values[p] - c) / s for p, c, s in zip(scorer.score_parts_, scorer.score_center_, scorer.score_scale_)}
    typical = scorer.reference_[tails_trim(scorer.reference_, detector.reference_trim)]
    cosine_center, cosine_scale = scoring.robust_scale(reconstruction_errors(detector.model_, typical)[1])
    z["cosine"] = (np.asarray(reconstruction_errors(detector.model_, X_scored)[1], np.float64) - cosine_center) / cosine_scale
    range_part = scorer.parts_[scorer.score_parts_.index("range")]
    scores = {p: z[p] for p in ("knn", "l2", "cosine", "tails")}
    scores["knn+l2"] = (z["knn"] + z["l2"]) / 2
    scores["knn+cosine"] = (z["knn"] + z["cosine"]) / 2
    scores["range"], scores["knn+l2+range"] = values["range"], scores["knn+l2"] + values["range"]
    scores["default"] = DeepUAD(seed=0).fit(X_fit).decision_function(X_scored)  # the package's own, parts as it resolves them
    out = {"L": range_part.level_}
    out.update({name: synthetic.spike_recall(np.asarray(s, dtype=np.float64), y) for name, s in scores.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seed", type=int, required=True)
    parser.add_argument("--rerun-used-split", action="store_true", help=RERUN_HELP)
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    args = parser.parse_args()
    refuse_used_split(args.split_seed, "wide_spikes", args.rerun_used_split)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    catalog = panel.catalog(args.max_rows, args.data_dir, args.data_dir / "odds_adbench")
    halves = panel.split(catalog, args.split_seed)
    header = ["| set | rows | columns | L | " + " | ".join(SCORES) + " |", "|---|---:|---:|---:|" + "---:|" * len(SCORES)]
    tables = {"in the fitted rows": list(header), "in new rows": list(header)}
    for name, family, _, load in catalog:
        if halves[name] != "tuning" or family not in ("tables", "images"):
            continue
        normal = normal_rows(name, args.data_dir, args.max_rows)
        if normal.shape[1] < MIN_COLUMNS:
            continue
        seed = zlib.crc32(f"{name}+spikes".encode())
        X, y = synthetic.spikes(normal, panel.SPIKES, seed=seed)
        X = panel._minmax(X)[0]
        scaled = panel._minmax(normal)[0]
        later, y_later = synthetic.spikes(scaled, panel.SPIKES, seed=seed)
        for how, found in (("in the fitted rows", recalls(X, X, y)), ("in new rows", recalls(scaled, later, y_later))):
            tables[how].append(f"| {name} | {len(X)} | {X.shape[1]} | {found.get('L', float('nan')):.2f} | " + " | ".join(
                f"{found[s]:.2f}" if s in found else "" for s in SCORES) + " |")
            print(how, tables[how][-1], flush=True)
    lines = [f"# Spikes planted in wide sets (SPLIT_SEED {args.split_seed}, tuning half, seed 0)", "",
             "`python bench/wide_spikes.py` (see its docstring). Share of the 20 spiked rows above the 99th percentile "
             "of the untouched rows' scores; L: the range part's level."]
    for how, table in tables.items():
        lines += ["", f"Spikes {how}:", "", *table]
    (panel.RESULTS / f"wide_spikes_split{args.split_seed}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
