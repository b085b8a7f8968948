"""deepuad's Gaussian mixture (deepuad/estimators/mixture.py) against scikit-learn's, on what deepuad clusters.

    python bench/gmm_speed.py                                   # ADBench sets -> bench/results/gmm_speed.md
    python bench/gmm_speed.py --kdd-features train.features.h5  # also full-size KDDCUP (a features file)

For each set: the rows themselves, as ``deepuad cluster`` clusters them (diagonal covariances,
reg_covar 1e-4, every row), and the z = [code; error] of each re-selection of a 20-epoch DeepUAD
fit (seed 0), as the re-selection clusters it (full covariances, reg_covar 1e-6, fitted on at most
20,000 seeded rows, every row assigned). Both classes get the same rows and seed; the table gives
the EM iterations of each, how many of all rows get a different label (what the selection sees),
and the median wall time of fit + assignment over --reps interleaved repetitions, one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from common import LoadSampler, git_state, machine_info  # noqa: E402

ADBENCH = ROOT.parent / "shared" / "data" / "odds_adbench"
RESULTS = Path(__file__).parent / "results"
SETS = ("4_breastw", "6_cardio", "17_InternetAds", "25_musk", "35_SpamBase", "38_thyroid", "47_yeast")


def clustered_matrices(X: np.ndarray) -> list[tuple[str, np.ndarray, str, float]]:
    """(what, matrix, covariance type, reg_covar): X as the initial clustering sees it, then the z of each re-selection."""
    from deepuad.estimators.detector import DeepUAD
    from deepuad.estimators.distributed import World

    found = [("rows", X, "diag", 1e-4)]

    def keep_z(event, detector, info):
        if event == "reselect":
            errors, codes = detector._encode(X, World(), True)
            found.append((f"z, re-selection {len(found)}", np.concatenate([codes, errors[:, None]], axis=1), "full", 1e-6))

    DeepUAD(epochs=20, seed=0).fit(X, callback=keep_z)
    return found


def one_case(Z: np.ndarray, covariance_type: str, reg_covar: float, seed: int, reps: int) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as ScikitLearnMixture

    from deepuad.estimators.clustering import _predict_in_chunks, _subsample
    from deepuad.estimators.mixture import GaussianMixture

    fit_sample = 20000 if covariance_type == "full" else None  # DEFAULTS["reselect_fit_sample"] for z
    sample = _subsample(Z, fit_sample, seed).astype(np.float64)
    Z = Z.astype(np.float64)
    seconds: dict[str, list[float]] = {"scikit-learn": [], "deepuad": []}
    result = {}
    for _ in range(reps):
        for name, cls in (("scikit-learn", ScikitLearnMixture), ("deepuad", GaussianMixture)):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = cls(n_components=20, covariance_type=covariance_type, reg_covar=reg_covar, random_state=seed).fit(sample)
            labels = _predict_in_chunks(model, Z)
            seconds[name].append(time.perf_counter() - started)
            result[name] = (model.n_iter_, labels)
    return {"rows": len(Z), "columns": Z.shape[1], "fit_rows": len(sample), "covariance": covariance_type,
            "iterations": f"{result['scikit-learn'][0]} / {result['deepuad'][0]}",
            "labels_differing": int(np.sum(result["scikit-learn"][1] != result["deepuad"][1])),
            "scikit-learn_s": statistics.median(seconds["scikit-learn"]), "deepuad_s": statistics.median(seconds["deepuad"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--kdd-features", type=Path, help="a deepuad features file of KDDCUP's train half (bench/kddcup.py)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "gmm_speed.md")
    args = parser.parse_args()
    import torch

    from deepuad.artifacts.features import load_features

    torch.set_num_threads(1)
    data = [(name, np.load(ADBENCH / f"{name}.npz")["X"].astype(np.float32)) for name in args.sets]
    data = [(name, (X - X.min(0)) / np.maximum(X.max(0) - X.min(0), 1e-12)) for name, X in data]  # as the panel scales
    if args.kdd_features:
        data.append(("KDDCUP 20 % train half", load_features(args.kdd_features)["X"]))
    sampler = LoadSampler()
    sampler.start()
    started, rows = time.time(), []
    for name, X in data:
        for what, Z, covariance_type, reg_covar in clustered_matrices(X.astype(np.float32)):
            row = {"set": name, "what": what, **one_case(Z, covariance_type, reg_covar, 0, args.reps)}
            rows.append(row)
            print(row, flush=True)
    sampler.stop()
    total_sklearn = sum(r["scikit-learn_s"] for r in rows)
    total_ours = sum(r["deepuad_s"] for r in rows)
    state, machine = git_state(), machine_info("numpy", "sklearn", "torch")
    load = sampler.window(started, time.time())
    lines = [
        "# deepuad's Gaussian mixture vs scikit-learn's",
        "",
        f"Regenerate: `python bench/gmm_speed.py{' --kdd-features <train half features>' if args.kdd_features else ''}` "
        f"(its docstring says what is clustered). Code: {state['commit']}. {machine['nproc']} cores, one thread, "
        f"scikit-learn {machine['sklearn']}, NumPy {machine['numpy']}; 1-minute load over the run: mean {load['mean']} "
        f"(min {load['min']}, max {load['max']}). "
        f"Seconds: fit + assigning every row, median of {args.reps} interleaved repetitions.",
        "",
        "| set | clustered | rows | columns | fitted on | covariance | EM iterations (scikit-learn / deepuad) "
        "| rows labelled differently | scikit-learn s | deepuad s | speed-up |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['set']} | {r['what']} | {r['rows']} | {r['columns']} | {r['fit_rows']} | {r['covariance']} | "
                     f"{r['iterations']} | {r['labels_differing']} | {r['scikit-learn_s']:.3f} | {r['deepuad_s']:.3f} | "
                     f"{r['scikit-learn_s'] / r['deepuad_s']:.1f}x |")
    differing = sum(r["labels_differing"] for r in rows)
    lines += ["", f"{len(rows)} clusterings, {sum(r['rows'] for r in rows):,} rows labelled: {differing} labelled differently. "
              f"All together {total_sklearn:.1f} s with scikit-learn's class, {total_ours:.1f} s with deepuad's "
              f"({total_sklearn / total_ours:.1f}x)."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
