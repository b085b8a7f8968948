"""Score candidates and ablations on the panel from one fit per set: which parts the default score
should combine, and what cleaning and each part buy.

    python bench/parts_panel.py --half tuning                  # fit and cache every tuning set, write the candidates
    python bench/parts_panel.py --half held-out --ablations    # after the freeze: the ablations of the default
    python bench/parts_panel.py --check 4_breastw               # the cache reproduces DeepUAD's own scores

For every panel set (bench/panel.py's catalog and split) and seed, two detectors are fitted and
cached under runs/parts_cache/:
* "kept": DeepUAD at the package's defaults (the paper's cleaning: low-variance clusters, then
  re-selection on [code; error]); every part of ``PARTS`` below is fitted on its reference (a
  seeded sample of the kept rows, as DeepUAD does) and gives its values on the scored rows and on
  the reference (whose median and spread standardise it, as DeepUAD does);
* "all": the same network trained on every row, without re-selection, and the parts fitted on a
  sample of all rows: the score without cleaning;
* "mixed": the network of "kept" (trained on the kept rows) and the parts fitted on the sample of
  all rows of "all".
A score is a tuple of parts and their weights, combined by deepuad.estimators.parts.combine: the
numbers DeepUAD(score=...) computes from the same fit (``--check`` asserts it for the default).

Rows are appended to panel.csv as ``deepuad:NAME`` for each entry of candidates.SCORE_CANDIDATES
(tuning half only: the protocol's candidates; bench/choose_defaults.py ranks them) and, with
``--ablations``, as ``ablation:NAME`` for the package's default score: ``no-cleaning`` (its parts
fitted on all rows) and ``<part>-alone`` (each part alone, fitted on the kept rows).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
from candidates import SCORE_CANDIDATES  # noqa: E402
from panel_tables import FIELDS, write_table  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators import scoring  # noqa: E402
from deepuad.estimators.autoencoder import reconstruction_errors  # noqa: E402
from deepuad.estimators.base import threshold_for_contamination  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

CACHE = ROOT / "runs" / "parts_cache"


class FencedRange(score_parts.OutsideKeptRange):
    """``range`` with a range that a few spikes left in the kept rows cannot widen: a column's kept
    range runs from its smallest to its largest value inside a fence 3 inner ranges beyond its 1st
    and 99th percentiles (inner range = 99th - 1st percentile); where the inner range is 0 (a
    column constant on 98 % of the rows), the package's rule."""

    name = "range_fenced"
    FENCE = 3.0

    def fit(self, reference, seed):
        super().fit(reference, seed)
        reference = np.asarray(reference, dtype=np.float64)
        ordered = np.sort(reference, axis=0)
        n = len(ordered)
        k = max(1, int(np.ceil(0.01 * n)))
        inner_low, inner_high = ordered[k - 1], ordered[n - k]
        inner = inner_high - inner_low
        fenced = inner > 1e-12
        fence_low, fence_high = inner_low - self.FENCE * inner, inner_high + self.FENCE * inner
        inside = (reference >= fence_low) & (reference <= fence_high)
        low = np.where(inside, reference, np.inf).min(axis=0)
        high = np.where(inside, reference, -np.inf).max(axis=0)
        self.low_ = np.where(fenced, low, self.low_)
        self.high_ = np.where(fenced, high, self.high_)
        self.span_ = np.where(fenced, np.maximum(self.high_ - self.low_, 1e-12), self.span_)
        return self


class DistinctNearestKept(score_parts.NearestKept):
    """``knn`` over the distinct reference rows: copies of one row count as one neighbour, so a few
    identical anomalies that stayed in the kept rows (8 copies of one connection in 16_http) are
    still far from every *other* kept row, instead of at distance 0 from each other."""

    name = "knn_distinct"

    def fit(self, reference, seed):
        self.reference_ = np.unique(np.asarray(reference, dtype=np.float32), axis=0)
        return self


PARTS = {**{name: (lambda name=name: score_parts.make(name, DEFAULTS["n_neighbors"])) for name in score_parts.PARTS},
         FencedRange.name: FencedRange, DistinctNearestKept.name: lambda: DistinctNearestKept(DEFAULTS["n_neighbors"])}
# the package part each bench part stands in for (parts.combine asks the registry whether a part is standardised)
REGISTERED = {FencedRange.name: "range", DistinctNearestKept.name: "knn"}


def errors_of(detector, rows: np.ndarray) -> dict[str, np.ndarray]:
    _, cosines, squares = reconstruction_errors(detector.model_, np.ascontiguousarray(rows, dtype=np.float32))
    return {"cosine": np.asarray(cosines), "l2": np.asarray(squares)}


def fit_and_cache(name: str, Xfit: np.ndarray, Xscore: np.ndarray, y: np.ndarray, seed: int) -> Path:
    """Fit "kept" and "all" on Xfit; cache each one's reference rows and the network's errors on
    the reference and on Xscore: all a part needs to be fitted and evaluated later."""
    from deepuad.estimators.detector import DeepUAD

    path = CACHE / f"{name}_s{seed}.npz"
    if path.exists():
        return path
    start = time.perf_counter()
    kept = DeepUAD(seed=seed).fit(Xfit)
    kept_seconds = time.perf_counter() - start
    everything = DeepUAD(seed=seed, r=DEFAULTS["epochs"] + 1).fit(Xfit, initial=np.arange(len(Xfit)))
    arrays = {"y": y, "kept_seconds": kept_seconds, "default_scores": kept.decision_function(Xscore)}
    # (prefix, the network, the rows its parts are fitted on)
    for prefix, network, detector in (("kept", kept, kept), ("all", everything, everything), ("mixed", kept, everything)):
        reference = np.asarray(detector.reference_, dtype=np.float32)
        arrays[f"{prefix}/reference"] = reference
        for rows, suffix in ((Xscore, ""), (reference, "@ref")):
            for kind, values in errors_of(network, rows).items():
                arrays[f"{prefix}/{kind}{suffix}"] = values
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(str(path) + ".tmp.npz", **arrays)
    os.replace(str(path) + ".tmp.npz", path)
    return path


class Values:
    """Each part's values on the scored rows and on the reference, fitted from a cache on demand."""

    def __init__(self, cache, Xscore: np.ndarray, seed: int):
        self.cache, self.X, self.seed, self.memo = cache, Xscore, seed, {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.memo:
            prefix, part = key.split("/")
            reference = self.cache[f"{prefix}/reference"]
            fitted = PARTS[part.removesuffix("@ref")]().fit(reference, self.seed)
            for rows, suffix in ((self.X, ""), (reference, "@ref")):
                errors = {kind: self.cache[f"{prefix}/{kind}{suffix}"] for kind in ("cosine", "l2")}
                self.memo[f"{prefix}/{fitted.name}{suffix}"] = np.asarray(fitted.values(rows, errors), dtype=np.float64)
        return self.memo[key]


def score_of(cache, prefix: str, parts: tuple[str, ...], weights: dict[str, float]) -> np.ndarray:
    """The score DeepUAD gives with these parts and weights, from cached values (parts.combine)."""
    values = [cache[f"{prefix}/{p}"] for p in parts]
    centers, scales = zip(*(scoring.robust_scale(cache[f"{prefix}/{p}@ref"]) for p in parts))
    registered = tuple(REGISTERED.get(p, p) for p in parts)
    w = np.array([weights.get(p, 1.0) for p in parts], dtype=np.float64)
    return score_parts.combine(values, registered, np.array(centers), np.array(scales), w).astype(np.float32)


def row_for(info: dict, method: str, seed: int, y: np.ndarray, score: np.ndarray, seconds: float) -> dict:
    share = scoring.estimate_contamination(score)
    threshold = threshold_for_contamination(score.astype(np.float64), share)
    return {**info, "method": method, "seed": seed, **panel.measures(y, score.astype(np.float64), threshold, info["family"]),
            "seconds": round(seconds, 2), "estimated_share": round(float(share), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=panel.RESULTS)
    parser.add_argument("--half", choices=("tuning", "held-out", "both"), default="tuning")
    parser.add_argument("--families", nargs="+", choices=panel.FAMILIES, default=list(panel.FAMILIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    parser.add_argument("--ablations", action="store_true", help="write the default score's ablations, not the candidates")
    parser.add_argument("--check", nargs="+", default=None, help="only check that the cache reproduces DeepUAD on these sets")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    sets = panel.catalog(args.max_rows, args.data_dir, args.data_dir / "odds_adbench")
    halves = panel.split(sets)
    default_parts = score_parts.SCORES[DEFAULTS["score"]]
    default_weights = score_parts.WEIGHTS.get(DEFAULTS["score"], {})
    if args.check:
        for name, family, _, load in sets:
            if name in args.check:
                Xfit, _, Xscore, y = load()
                cache = Values(np.load(fit_and_cache(name, Xfit, Xscore, y, args.seeds[0])), Xscore, args.seeds[0])
                mine = score_of(cache, "kept", default_parts, default_weights)
                print(f"{name}: max |cache - DeepUAD| = {np.abs(mine - cache.cache['default_scores']).max():.3g}")
        return
    if args.ablations:
        methods = {"ablation:no-cleaning": ("all", default_parts, default_weights)}
        methods.update({f"ablation:{p}-alone": ("kept", (p,), {}) for p in default_parts})
    else:
        prefix = {"kept": "kept", "all": "mixed"}
        methods = {f"deepuad:{name}": (prefix[c.get("reference", "kept")], c["parts"], c.get("weights", {}))
                   for name, c in SCORE_CANDIDATES.items()}
    csv_path = args.results / "panel.csv"
    done = {(r["dataset"], r["method"], int(r["seed"])) for r in csv.DictReader(csv_path.open())}
    for name, family, _, load in sets:
        if family not in args.families or args.half not in ("both", halves[name]):
            continue
        if all((name, m, s) in done for m in methods for s in args.seeds):
            continue
        Xfit, _, Xscore, y = load()
        if y.min() == y.max():
            print(f"{name}: skipped, one class only", flush=True)
            continue
        if Xscore is not Xfit and np.array_equal(Xscore, Xfit):
            Xscore = Xfit
        info = {"dataset": name, "family": family, "half": halves[name], "rows_fit": len(Xfit), "rows_scored": len(Xscore),
                "features": Xfit.shape[1], "anomaly_share": round(float(np.mean(y)), 4)}
        for seed in args.seeds:
            cache = Values(np.load(fit_and_cache(name, Xfit, Xscore, y, seed)), Xscore, seed)
            rows = [row_for(info, method, seed, y, score_of(cache, prefix, parts, weights), float(cache.cache["kept_seconds"]))
                    for method, (prefix, parts, weights) in methods.items() if (name, method, seed) not in done]
            with csv_path.open("a", newline="") as out:
                csv.DictWriter(out, FIELDS).writerows(rows)
            print(f"{name:26s} seed {seed}  " + "  ".join(f"{r['method'].split(':')[1]} {r['auroc']:.3f}" for r in rows), flush=True)
    write_table(csv_path, args.results / "panel.md")


if __name__ == "__main__":
    main()
