"""What fitting the re-selection GMM on a capped subsample of z does to test AUROC (KDDCUP, 20 %).

    python bench/reselect_shortcut.py --split runs/kdd_table/c20_s0 [--epochs 20] [--caps 0 20000]

Uses a bench/kdd_table.py split (train/test features + the initial clusters file) and the paper's
GMM re-selection (reselect_by="variance"); cap 0 = uncapped. Prints test AUROC/AUPRC and wall time.
"""

import argparse
import time
from pathlib import Path

import torch

from deepuad import artifacts as art
from deepuad.estimators.detector import DeepUAD
from deepuad.estimators.metrics import ranking_metrics
from deepuad.artifacts.features import load_features

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--split", type=Path, required=True)
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--caps", type=int, nargs="+", default=[0, 20000])
args = parser.parse_args()
torch.set_num_threads(1)
train, test = load_features(args.split / "train.features.h5"), load_features(args.split / "test.features.h5")
with art.open_artifact(args.split / "clusters.h5", "clusters") as f:
    initial = art.read_array(f, "selected")
for cap in args.caps:
    start = time.perf_counter()
    detector = DeepUAD(epochs=args.epochs, reselect_by="variance", reselect_fit_sample=cap or None, seed=0).fit(train["X"], initial=initial)
    metrics = ranking_metrics(test["y"], detector.decision_function(test["X"]))
    print(f"reselect_fit_sample={cap or 'all'}: test AUROC {metrics['auroc']:.4f} AUPRC {metrics['auprc']:.4f}, "
          f"{detector.epoch_} epochs ({detector.stop_reason_}), selections {[it.n_selected for it in detector.iterations_]}, "
          f"{time.perf_counter() - start:.0f} s", flush=True)
