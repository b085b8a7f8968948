"""Score candidates and ablations on the panel from one fit per set: which parts the default score
should combine, and what cleaning and each part buy.

    python bench/parts_panel.py --half tuning                  # fit and cache every tuning set, write the candidates
    python bench/parts_panel.py --half held-out --ablations    # after the freeze: the ablations of the default
    python bench/parts_panel.py --check 4_breastw               # the cache reproduces DeepUAD's own scores
    python bench/parts_panel.py --check 4_breastw --cache FRESH --same-as runs/parts_cache_split31   # an older cache's fits

For every panel set (bench/panel.py's catalog and split) and seed, two detectors are fitted: DeepUAD
at the package's defaults (the paper's cleaning: low-variance clusters, then re-selection on
[code; error]) and the same network trained on every row without re-selection. Cached under
runs/parts_cache/, for three views (a network and the reference rows its parts are fitted on):
* "mixed": the network trained on the kept rows, the parts fitted on a seeded sample of all rows
  (the package's default since the freeze of issue 29's second round; since the third, its range
  is fitted on the kept rows: a score's ``kept_parts`` take theirs from "kept");
* "kept": the same network, the parts fitted on a seeded sample of the kept rows (the package's
  rule before it);
* "all": the network trained on every row, the parts on a sample of all rows (no cleaning at all);
and one derived from "mixed" when a score asks for it (``Values.trimmed``):
* "trim<C>": "mixed" with its reference trimmed by its tails at cutoff C (cleaning.tails_trim; the
  package's default since the seventh round's freeze, C = ``reference_trim``).
Each view keeps its reference rows and the network's errors on them and on the scored rows: all
that a part needs to be fitted and evaluated. A score is a tuple of parts and weights, combined by
deepuad.estimators.parts.combine: the numbers DeepUAD computes from the same fit (``--check``
asserts it for the default).

Rows are appended to panel.csv as ``deepuad:NAME`` for each entry of candidates.SCORE_CANDIDATES
(tuning half only: the protocol's candidates; bench/choose_defaults.py ranks them) and, with
``--ablations``, ``deepuad`` (the package's own scores, threshold and flag share) and, as
``ablation:NAME``, its score with ``no-cleaning`` ("all"), with ``kept-reference`` ("kept"), with
``untrimmed-reference`` ("mixed", where the default trims) and ``<part>-alone`` (each part alone, as the
package fits it).
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
from deepuad.estimators.cleaning import tails_trim  # noqa: E402
from deepuad.estimators import scoring  # noqa: E402
from deepuad.estimators.autoencoder import reconstruction_errors  # noqa: E402
from deepuad.estimators.base import threshold_for_contamination  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

CACHE = ROOT / "runs" / "parts_cache"


PARTS = {name: (lambda name=name: score_parts.make(name, n_neighbors=DEFAULTS["n_neighbors"])) for name in score_parts.PARTS}
# candidates.py's names for what are now the package's "range" and "knn" (docs/results.md: which
# candidates' tuning rows can no longer be recomputed)
PARTS.update({"range_fenced": PARTS["range"], "knn_distinct": PARTS["knn"]})
REGISTERED = {"range_fenced": "range", "knn_distinct": "knn", "range_calibrated": "range"}


class AxesTails(score_parts.Tails):
    """The tails part on the principal axes of the rows it is fitted on: the rows centred on their mean and
    turned onto the right singular vectors of the centred rows, all of them. Correlated columns are one axis
    there, and a row that breaks their correlation (a dependency anomaly) lies far out on a minor axis, where
    the tails part on the columns ranks it at chance (bench/unseen_parts.py, bench/part_fixes.py).

    Not reproducible across thread counts where the rows have fewer independent directions than columns (a
    rank-deficient reference, as 17_InternetAds's): the axes of its null space are an arbitrary basis that the
    LAPACK build and its threads choose, and the tails on them move with it."""

    def fit(self, reference, seed):
        reference = np.asarray(reference, dtype=np.float64)
        self.mean_ = reference.mean(axis=0)
        _, _, self.axes_ = np.linalg.svd(reference - self.mean_, full_matrices=False)
        return super().fit(self._turned(reference), seed)

    def _turned(self, X):
        return ((np.asarray(X, dtype=np.float64) - self.mean_) @ self.axes_.T).astype(np.float32)

    def values(self, X, errors):
        return super().values(self._turned(X), errors)


PARTS["tails_axes"] = AxesTails
REGISTERED["tails_axes"] = "tails"


class CalibratedRange(score_parts.OutsideRange):
    """The package's range up to the fourth round's freeze (2aee2a6): fitted on the kept rows, less the
    level L its values reach by chance on a seeded half of them fitted on the other half (their
    ``BY_CHANCE`` quantile), in units of the column's range (not of 1 + L)."""

    BY_CHANCE = 0.99

    def level(self, by_chance: np.ndarray) -> float:
        return float(np.quantile(by_chance, self.BY_CHANCE))

    def fit(self, reference, seed):
        reference = np.asarray(reference, dtype=np.float64)
        by_chance = self._by_chance(reference, seed)
        level = self.level(by_chance) if len(by_chance) else 0.0
        self._fit_range(reference)
        self.offset_ = level
        return self


class RangeAtQuantile(CalibratedRange):
    """Issue 29's fourth round: the level at the held-out half's 95th percentile, not its 99th: the
    kept rows may hold anomalies (spikes the cleaning kept), and where more than 1 % of them lie far
    out, the 99th percentile is one of them and the offset swallows every spike."""

    BY_CHANCE = 0.95


class RangeFence90(CalibratedRange):
    """The level as the 99th percentile, but at most the 90th percentile plus three times its
    distance from the median (a fence the upper 10 % of the half cannot move)."""

    def level(self, by_chance):
        q50, q90, q99 = np.quantile(by_chance, [0.5, 0.9, 0.99])
        return float(min(q99, q90 + 3 * (q90 - q50)))


# "range_scaled": RangeAtQuantile in units of (1 + its level) times the column's range (on a table
# the level is 0 and nothing changes; on 784 pixels a row counts in units of that level): the
# package's "range" since the fourth round's freeze, chosen as part of range-scaled-kept-forest
PARTS.update({"range_calibrated": CalibratedRange, "range_scaled": PARTS["range"], "range_q95": RangeAtQuantile,
              "range_fence90": RangeFence90})
REGISTERED.update({"range_q95": "range", "range_fence90": "range", "range_scaled": "range"})


def errors_of(detector, rows: np.ndarray) -> dict[str, np.ndarray]:
    _, cosines, squares = reconstruction_errors(detector.model_, np.ascontiguousarray(rows, dtype=np.float32))
    return {"cosine": np.asarray(cosines), "l2": np.asarray(squares)}


def fit_and_cache(name: str, Xfit: np.ndarray, Xscore: np.ndarray, y: np.ndarray, seed: int, epochs: int | None = None) -> Path:
    """Fit "kept" and "all" on Xfit; cache each one's reference rows and the network's errors on
    the reference and on Xscore: all a part needs to be fitted and evaluated later. ``epochs``: the
    epoch budget (smoke runs; the package's default where None)."""
    from deepuad.estimators.detector import DeepUAD

    path = CACHE / f"{name}_s{seed}.npz"
    if path.exists():
        return path
    budget = DEFAULTS["epochs"] if epochs is None else epochs
    start = time.perf_counter()
    kept = DeepUAD(seed=seed, epochs=budget).fit(Xfit)
    kept_seconds = time.perf_counter() - start
    everything = DeepUAD(seed=seed, epochs=budget, r=budget + 1).fit(Xfit, initial=np.arange(len(Xfit)))
    arrays = {"y": y, "kept_seconds": kept_seconds, "default_scores": kept.decision_function(Xscore),
              "default_threshold": kept.threshold_, "default_share": kept.contamination_}
    rng = np.random.default_rng([seed, len(kept.iterations_)])
    kept_rows = Xfit[score_parts.reference_rows(rng, kept.selected_, kept.reference_size)]  # a sample of the kept rows
    # prefix: (the network, the rows its parts are fitted on)
    views = {"kept": (kept, kept_rows), "all": (everything, everything.reference_), "mixed": (kept, kept.reference_)}
    for prefix, (network, reference) in views.items():
        reference = np.asarray(reference, dtype=np.float32)
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
        self.cache, self.X, self.seed, self.memo = dict(cache), Xscore, seed, {}

    def trimmed(self, cutoff: float | None) -> str:
        """The view "mixed" with its reference trimmed by its tails (cleaning.tails_trim at ``cutoff``),
        added to the cache under "trim<cutoff>" on first use; "mixed" itself where ``cutoff`` is None."""
        if cutoff is None:
            return "mixed"
        view = f"trim{cutoff}"
        if f"{view}/reference" not in self.cache:
            keep = tails_trim(self.cache["mixed/reference"], cutoff)
            self.cache[f"{view}/reference"] = self.cache["mixed/reference"][keep]
            for kind in ("cosine", "l2"):
                self.cache[f"{view}/{kind}@ref"] = self.cache[f"mixed/{kind}@ref"][keep]
                self.cache[f"{view}/{kind}"] = self.cache[f"mixed/{kind}"]
        return view

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.memo:
            prefix, part = key.split("/")
            reference = self.cache[f"{prefix}/reference"]
            name = part.removesuffix("@ref")  # a candidate's name for a part, maybe an alias (REGISTERED)
            fitted = PARTS[name]().fit(reference, self.seed)
            for rows, suffix in ((self.X, ""), (reference, "@ref")):
                errors = {kind: self.cache[f"{prefix}/{kind}{suffix}"] for kind in ("cosine", "l2")}
                self.memo[f"{prefix}/{name}{suffix}"] = np.asarray(fitted.values(rows, errors), dtype=np.float64)
        return self.memo[key]


def score_of(cache, prefix: str, parts: tuple[str, ...], weights: dict[str, float], kept_parts: tuple[str, ...] = ()) -> np.ndarray:
    """The score DeepUAD gives with these parts and weights, from cached values (parts.combine): each
    part fitted on the reference rows of view ``prefix``, those of ``kept_parts`` on the kept rows."""
    views = {p: "kept" if p in kept_parts else prefix for p in parts}
    values = [cache[f"{views[p]}/{p}"] for p in parts]
    centers, scales = zip(*(scoring.robust_scale(cache[f"{views[p]}/{p}@ref"]) for p in parts))
    registered = tuple(REGISTERED.get(p, p) for p in parts)
    w = np.array([weights.get(p, 1.0) for p in parts], dtype=np.float64)
    return score_parts.combine(values, registered, np.array(centers), np.array(scales), w).astype(np.float32)


# a candidate's "wide" entry that defers to the package's own rule (parts.data_kind, parts.resolved_score)
PACKAGE = "package"


def package_choice(cache: "Values", view: str = "kept") -> tuple[str, tuple[str, ...], dict]:
    """(the data's kind, the parts, their weights) of the package's default score on this set, as the package
    chooses them from the reference rows of ``view`` ("kept": the kept rows, as the package reads them)."""
    score = DEFAULTS["score"]
    kind = "narrow"
    if score in score_parts.BY_DATA:
        kind = score_parts.data_kind(cache.cache[f"{view}/reference"], cache.seed)
        score = score_parts.BY_DATA[score][kind]
    return kind, score_parts.parts_of(score), dict(score_parts.WEIGHTS.get(score, {}))


def wide_parts(cache: "Values", wide: dict | str | None, view: str = "kept") -> tuple[str, ...] | None:
    """A candidate's parts on wide data (its "wide" entry) where the set is wide: at least ``columns``
    columns, and a range part fitted on the reference rows of ``view`` ("kept": the kept rows; "all"
    for a fit without cleaning) at a level of at least ``level`` (parts.data_kind); else None. ``PACKAGE``:
    the package's parts where it takes the set as wide."""
    if wide == PACKAGE:
        kind, parts, _ = package_choice(cache, view)
        return parts if kind == "wide" else None
    chosen = by_data(cache, wide and {k: v for k, v in wide.items() if k != "many"}, view)
    return chosen[0] if chosen else None


def by_data(cache: "Values", wide: dict | str | None, view: str = "kept") -> tuple[tuple[str, ...], dict] | None:
    """(parts, weights) a candidate's "wide" entry gives this set, None where its usual parts apply. With at
    least ``columns`` columns: the entry's ``parts`` where the range part, fitted on the reference rows of
    ``view``, has a level of at least ``level`` (``wide_parts``); below that level, its "many" entry's
    ``parts`` and ``weights`` where it has one, and where its columns are dense if it asks so (``modal_share``:
    the median column's most common value held by at most that share of the rows, parts.modal_share).
    ``PACKAGE``: the package's own choice (``package_choice``) wherever the data is not narrow."""
    if wide == PACKAGE:
        kind, parts, weights = package_choice(cache, view)
        return None if kind == "narrow" else (parts, weights)
    if not wide or cache.X.shape[1] < wide["columns"]:
        return None
    reference = cache.cache[f"{view}/reference"]
    if PARTS["range"]().fit(reference, cache.seed).level_ >= wide["level"]:
        return tuple(wide["parts"]), {}
    many = wide.get("many")
    if many and ("modal_share" not in many or score_parts.modal_share(reference) <= many["modal_share"]):
        return tuple(many["parts"]), dict(many.get("weights", {}))
    return None


def package_default() -> tuple:
    """The package's default score as ``run_row`` takes a spec: its parts, their weights, those fitted on the kept
    rows, its parts by the data (``PACKAGE`` where it chooses them by the data, else None) and its reference
    trim (cleaning.tails_trim's cutoff, None for none)."""
    parts = score_parts.parts_of(DEFAULTS["score"])
    by_kind = PACKAGE if DEFAULTS["score"] in score_parts.BY_DATA else None
    return (parts, score_parts.WEIGHTS.get(DEFAULTS["score"], {}), kept_parts(parts), by_kind, DEFAULTS.get("reference_trim"))


def kept_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``parts`` the package fits on the kept rows (``fitted_on``)."""
    return tuple(p for p in parts if score_parts.PARTS[REGISTERED.get(p, p)].fitted_on == "kept")


def aurocs(cache: "Values", y: np.ndarray, columns: dict[str, tuple[str, ...]]) -> dict:
    """From one cached fit: whether the set is wide for the package's default and its kind (parts.data_kind), the
    AUROC of that default (its parts as ``auto`` resolves them) and of each entry of ``columns`` (parts combined as
    the package combines them, each fitted where the package fits it), the reference trimmed as the default trims it."""
    from sklearn.metrics import roc_auc_score

    view = cache.trimmed(package_default()[4])
    kind, parts, weights = package_choice(cache)
    out: dict = {"wide": kind == "wide", "kind": kind,
                 "default": float(roc_auc_score(y, score_of(cache, view, parts, weights, kept_parts(parts))))}
    for column, parts in columns.items():
        out[column] = float(roc_auc_score(y, score_of(cache, view, parts, {}, kept_parts(parts))))
    return out


def row_for(info: dict, method: str, seed: int, y: np.ndarray, score: np.ndarray, seconds: float) -> dict:
    share = scoring.estimate_contamination(score)
    threshold = threshold_for_contamination(score.astype(np.float64), share)
    return {**info, "method": method, "seed": seed, **panel.measures(y, score.astype(np.float64), threshold, info["family"]),
            "seconds": round(seconds, 2), "estimated_share": round(float(share), 4)}


def package_row(info: dict, seed: int, y: np.ndarray, cache) -> dict:
    """The package's own run (``deepuad``): its scores, threshold and flag share, as bench/panel.py records them."""
    score = np.asarray(cache["default_scores"], dtype=np.float64)
    return {**info, "method": "deepuad", "seed": seed,
            **panel.measures(y, score, float(cache["default_threshold"]), info["family"]),
            "seconds": round(float(cache["kept_seconds"]), 2), "estimated_share": round(float(cache["default_share"]), 4)}


def run_row(info: dict, method: str, spec, seed: int, y: np.ndarray, cache: "Values", default: tuple, views: bool = False) -> dict:
    """One panel.csv row: ``spec`` (view, parts, weights, parts fitted on the kept rows, the parts on wide
    data: wide_parts) scored from the cache, or, for the package's
    own run (``spec`` None), its stored scores; a cache made before the freeze stores none (and with
    ``views`` they are not read), and there the "mixed" view of the default parts gives the package's
    numbers (``--check``)."""
    if spec is None and "default_threshold" in cache.cache and not views:
        return package_row(info, seed, y, cache.cache)
    prefix, parts, weights, kept_parts, wide, trim = spec or ("mixed", *default)
    prefix = cache.trimmed(trim) if prefix == "mixed" else prefix
    parts, weights = by_data(cache, wide, "all" if prefix == "all" else "kept") or (parts, weights)
    return row_for(info, method, seed, y, score_of(cache, prefix, parts, weights, kept_parts), float(cache.cache["kept_seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=panel.RESULTS)
    parser.add_argument("--half", choices=("tuning", "held-out", "both"), default="tuning")
    parser.add_argument("--families", nargs="+", choices=panel.FAMILIES, default=list(panel.FAMILIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    parser.add_argument("--ablations", action="store_true", help="write the default score's ablations, not the candidates")
    parser.add_argument("--cache", type=Path, default=None, help="the folder of cached fits [default: runs/parts_cache]")
    parser.add_argument("--check", nargs="+", default=None, help="only check that the cache reproduces DeepUAD on these sets")
    parser.add_argument("--same-as", type=Path, default=None,
                        help="with --check on a fresh --cache: whether this older cache holds the same fits of those sets")
    parser.add_argument("--views", action="store_true",
                        help="score the package's own row (deepuad) from the cached views, as --check proves it equal, "
                             "not from the scores a cache stores: an older package may have written them")
    args = parser.parse_args()
    global CACHE
    CACHE = args.cache or CACHE
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    sets = panel.catalog(args.max_rows, args.data_dir, args.data_dir / "odds_adbench")
    halves = panel.split(sets)
    default = package_default()
    default_parts, default_weights, default_kept, default_wide_parts, default_trim = default
    if args.check:
        for name, family, _, load in sets:
            if name in args.check:
                Xfit, _, Xscore, y = load()
                path = fit_and_cache(name, Xfit, Xscore, y, args.seeds[0])
                cache = Values(np.load(path), Xscore, args.seeds[0])
                parts, weights = by_data(cache, default_wide_parts) or (default_parts, default_weights)
                mine = score_of(cache, cache.trimmed(default_trim), parts, weights, kept_parts(parts))
                print(f"{name}: max |cache - DeepUAD| = {np.abs(mine - cache.cache['default_scores']).max():.3g}")
                if args.same_as:  # an older cache still holds the fits this package makes: its views may be scored
                    fresh, older = np.load(path), np.load(args.same_as / path.name)
                    fits = [k for k in fresh.files if "/" in k]  # each view's reference rows and errors
                    differ = [k for k in fits if k not in older.files or not np.array_equal(fresh[k], older[k])]
                    print(f"{name}: {len(fits) - len(differ)} of {len(fits)} fitted arrays equal to {args.same_as}'s"
                          + (f" (not: {', '.join(differ)})" if differ else ""))
        return
    if args.ablations:  # the package's default: the network of "kept", the parts fitted on all rows ("mixed")
        methods = {"deepuad": None, "ablation:no-cleaning": ("all", default_parts, default_weights, (), default_wide_parts, None),
                   "ablation:kept-reference": ("kept", default_parts, default_weights, (), default_wide_parts, None)}
        if default_trim is not None:  # the reference as drawn, every row of it
            methods["ablation:untrimmed-reference"] = ("mixed", default_parts, default_weights, default_kept, default_wide_parts, None)
        methods.update({f"ablation:{p}-alone": ("mixed", (p,), {}, default_kept, None, default_trim) for p in default_parts})
    else:
        prefix = {"kept": "kept", "all": "mixed"}
        methods = {f"deepuad:{name}": (prefix[c.get("reference", "kept")], c["parts"], c.get("weights", {}), c.get("kept_parts", ()),
                                       c.get("wide"), c.get("reference_trim"))
                   for name, c in SCORE_CANDIDATES.items()}
        methods["deepuad"] = None  # the package's own default: the "default" candidate of choose_defaults
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
            rows = [run_row(info, method, spec, seed, y, cache, default, args.views)
                    for method, spec in methods.items() if (name, method, seed) not in done]
            with csv_path.open("a", newline="") as out:
                csv.DictWriter(out, FIELDS).writerows(rows)
            print(f"{name:26s} seed {seed}  " + "  ".join(f"{r['method'].split(':')[-1]} {r['auroc']:.3f}" for r in rows), flush=True)
    write_table(csv_path, args.results / "panel.md")


if __name__ == "__main__":
    main()
