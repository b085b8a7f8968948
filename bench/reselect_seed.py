"""How much of a re-selection the GMM's own seed decides, against how much stopping EM early does.

    python bench/reselect_seed.py                    # -> bench/results/reselect_seed.md

For each ADBench set (min-max scaled, all rows): DeepUAD with its defaults trains --epochs epochs
(two re-selections at the default r = 10, tol 0, seed 0); then z = [code; error] of every row is
fixed and the re-selection C(z, p) is made as DeepUAD makes it (20 full-covariance components,
reg_covar 1e-6, the selection rule with p = 30) with GMM seeds 0 to --seeds - 1, and with seed 0
and EM stopped after --caps iterations, and (to see whether more EM starts settle it) the best of
--n-init starts by likelihood with seeds 0 to --seeds - 1. Reported: the share of all rows that move (enter or leave
the selection) against seed 0's uncapped choice, which is what the convergence test compares
with tol x N (default 5 %), the EM iterations and the seconds of each fit.

A selection that moves by more than tol x N when only the GMM's seed changes cannot converge: the
training loop then spends its whole epoch budget (docs/results.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import git_state  # noqa: E402

from deepuad.estimators.autoencoder import encode_and_score  # noqa: E402
from deepuad.estimators.clustering import fit_gmm  # noqa: E402
from deepuad.estimators.detector import DeepUAD  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402
from deepuad.estimators.selection import select  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "odds_adbench"
RESULTS = Path(__file__).parent / "results"
SETS = ("4_breastw", "6_cardio", "7_Cardiotocography", "12_fault", "29_Pima", "25_musk", "35_SpamBase", "38_thyroid", "47_yeast")


def reselection(z: np.ndarray, seed: int, max_iter: int, n_init: int = 1) -> tuple[np.ndarray, float, int]:
    """(selected rows, seconds, EM iterations) of one re-selection, as DeepUAD._choose makes it
    (``n_init`` > 1: the best of that many EM starts, which DeepUAD does not do)."""
    start = time.perf_counter()
    fits = [fit_gmm(z, DEFAULTS["reselect_clusters"], seed * n_init + start_index, "full", 1e-6, max_iter=max_iter,
                    fit_sample=DEFAULTS["reselect_fit_sample"]) for start_index in range(n_init)]
    gmm = max(fits, key=lambda fit: fit.lower_bound_)  # the best start by likelihood, as scikit-learn's n_init picks
    labels = gmm.predict(z)
    selected = select(z, labels, DEFAULTS["p"], over=DEFAULTS["percentile_over"], min_fraction=DEFAULTS["min_fraction"]).selected
    return selected, time.perf_counter() - start, int(gmm.n_iter_)


def moved(a: np.ndarray, b: np.ndarray, n: int) -> float:
    return len(np.setxor1d(a, b)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(SETS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--caps", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--n-init", type=int, default=10, help="EM starts of the best-of-n column (1 = leave it out)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = ["# The re-selection GMM: what its seed moves, and what stopping EM early moves", "",
             f"Regenerate: `python bench/reselect_seed.py`. Code: {git_state()['commit']}. Per set: DeepUAD (defaults, seed 0) "
             f"trained {args.epochs} epochs, then z of every row fixed and re-selected with GMM seeds 0-{args.seeds - 1} "
             "(EM to convergence, at most 100 iterations) and with seed 0 stopped early. \"moved\": rows that enter or leave "
             "the selection against seed 0's uncapped one, in % of all rows (the convergence test stops at 5 %). "
             "Seconds and EM iterations: median per fit, one thread.", "",
             "| set | rows | seed 0: s / iterations | other seeds: moved % (each) | other seeds: s / iterations | "
             + " | ".join(f"EM stopped at {cap}: moved % / s" for cap in args.caps)
             + (f" | best of {args.n_init} EM starts, other seeds: moved % (each) / s" if args.n_init > 1 else "") + " |",
             "|---|---|---|---|---|" + "---|" * (len(args.caps) + (args.n_init > 1))]
    for name in args.datasets:
        X = np.load(SHARED / f"{name}.npz")["X"].astype(np.float64)
        X = ((X - X.min(0)) / np.maximum(X.max(0) - X.min(0), 1e-12)).astype(np.float32)
        detector = DeepUAD(epochs=args.epochs, tol=0.0).fit(X)
        codes, errors = encode_and_score(detector.model_, X, device="cpu")
        z = np.concatenate([codes, errors[:, None]], axis=1).astype(np.float64)
        reference, seconds, iterations = reselection(z, 0, 100)
        others = [reselection(z, seed, 100) for seed in range(1, args.seeds)]
        capped = [reselection(z, 0, cap) for cap in args.caps]
        best = [reselection(z, seed, 100, args.n_init) for seed in range(args.seeds)] if args.n_init > 1 else []
        lines.append(
            f"| {name} | {len(X)} | {seconds:.2f} / {iterations} | "
            + ", ".join(f"{100 * moved(reference, s, len(X)):.0f}" for s, _, _ in others)
            + f" | {statistics.median(t for _, t, _ in others):.2f} / {statistics.median(i for _, _, i in others):.0f} | "
            + " | ".join(f"{100 * moved(reference, s, len(X)):.0f} / {t:.2f}" for s, t, _ in capped)
            + (" | " + ", ".join(f"{100 * moved(best[0][0], s, len(X)):.0f}" for s, _, _ in best[1:])
               + f" / {statistics.median(t for _, t, _ in best):.2f}" if best else "") + " |")
        print(lines[-1], flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "reselect_seed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
