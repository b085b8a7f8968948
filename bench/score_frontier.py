"""How far can the default's parts go? Issue 29 asks for every family's mean within 0.01 of its best
peer. This measures, on the tuning half of a split no round has used (it refuses a split whose
held-out half has run), what the parts of the default score (knn, l2, iforest, range) can reach
when they are combined in other ways, *with the labels allowed to choose*: a ceiling, not a
candidate. If no combination reaches the goal even chosen in-sample, no round on these parts can.

* ``parts``: each part alone, the k-NN part with other statistics (the mean distance to the k
  nearest distinct rows, as the package's part, or the distance to the k-th; k = 5, 10, 20, 40),
  PyOD's ECOD on the sample of all rows, and the network trained on every row (no cleaning);
* ``shapes``: the default with one thing changed: the k-NN statistic, how the parts are combined
  (the largest z-score, the mean of the two largest, log-sum-exp), how the range enters (the
  larger of the mean and the range; calibrated on all rows; left out), the forest left out, ECOD
  added;
* ``grid``: every weighting of the three standardised parts (0, 0.5, 1, 2, 4 each) and of the
  range (0, 0.25, 1): the one whose worst family lies closest to its best peer, and the one with
  the best mean of family means; then the same with two weightings, one for data with at least T
  columns and one for the rest (T = 64, 100, 200, 500), chosen the same way;
* ``signals``: the rank correlation over the sets of the forest's lead over the better of the k-NN
  and network parts with three label-free properties of the data (its width; how much of the kept
  rows' variance the network reconstructs, R^2; their covariance's participation ratio).

    python bench/score_frontier.py --split-seed 45     # -> bench/results/score_frontier_split45.{csv,md}

From the parts cache of bench/parts_panel.py (``--cache``, seed 0; no network is fitted) and the
peers' seed-0 rows of bench/results/panel.csv; about three minutes for the half.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.special import logsumexp  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
from cleaning_variants import RERUN_HELP, refuse_used_split, scored_tuning_sets  # noqa: E402
from part_choice import auroc, part_values  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators import scoring  # noqa: E402

STANDARDISED = ("knn", "l2", "iforest")
NEIGHBOURS = (5, 10, 20, 40)
WEIGHTS = (0, 0.5, 1, 2, 4)
RANGE_WEIGHTS = (0, 0.25, 1)
WIDTHS = (64, 100, 200, 500)
PEERS = ("iforest", "knn", "ecod", "pyod-ae", "dif")


def neighbour_values(reference: np.ndarray, X: np.ndarray) -> dict[str, np.ndarray]:
    """log of the mean distance to the k nearest distinct rows of ``reference`` and of the distance to
    the k-th, for each k of NEIGHBOURS (an exact copy of the row skipped once, as the package's part)."""
    reference = np.unique(np.asarray(reference, dtype=np.float32), axis=0).astype(np.float64)
    X = np.asarray(X, dtype=np.float64)
    k_max = min(max(NEIGHBOURS), len(reference) - 1)
    x_norms = np.einsum("ij,ij->i", X, X)
    squared = x_norms[:, None] - 2.0 * X @ reference.T + np.einsum("ij,ij->i", reference, reference)
    nearest = np.sort(np.partition(squared, k_max, axis=1)[:, : k_max + 1], axis=1)
    self_match = nearest[:, :1] <= 1e-12 * (1.0 + x_norms[:, None])  # as scoring.knn_distances
    distances = np.sqrt(np.maximum(np.where(self_match, nearest[:, 1:], nearest[:, :-1]), 0.0))
    out = {}
    for k in NEIGHBOURS:
        k_used = min(k, k_max)
        out[f"mean{k}"] = np.log(distances[:, :k_used].mean(axis=1) + 1e-12)
        out[f"kth{k}"] = np.log(distances[:, k_used - 1] + 1e-12)
    return out


def set_values(cache, Xscore: np.ndarray) -> dict:
    """The default parts (part_choice.part_values) and the extra views, each ``NAME`` on the scored
    rows and ``NAME@fit`` on the rows its centre and spread come from."""
    from pyod.models.ecod import ECOD

    values = part_values(cache, Xscore)
    everything = cache["mixed/reference"]
    for name, v in neighbour_values(everything, Xscore).items():
        values[name] = v
    for name, v in neighbour_values(everything, everything).items():
        values[f"{name}@fit"] = v
    ecod = ECOD().fit(everything)
    values["ecod"], values["ecod@fit"] = ecod.decision_function(Xscore), ecod.decision_scores_
    values["l2 no cleaning"] = np.log(cache["all/l2"] + 1e-12)
    values["l2 no cleaning@fit"] = np.log(cache["all/l2@ref"] + 1e-12)
    # the range uncalibrated, on the scored rows and on the sample of all rows
    bare = score_parts.make("range")
    bare._fit_range(np.asarray(cache["kept/reference"], dtype=np.float64))
    bare.offset_ = 0.0
    values["range bare"], values["range bare@all"] = bare.values(Xscore, {}), bare.values(everything, {})
    return values


def z(values: dict, name: str) -> np.ndarray:
    center, scale = scoring.robust_scale(values[f"{name}@fit"])
    return (values[name] - center) / scale


def shapes(v: dict) -> dict[str, np.ndarray]:
    """The default (mean of the z-scores plus the range) and variants with one thing changed."""
    Z = np.array([z(v, p) for p in STANDARDISED])
    out = {"default": Z.mean(axis=0) + v["range"]}
    for k in NEIGHBOURS:
        for stat in ("mean", "kth"):
            out[f"k-NN {stat} {k}"] = np.mean([z(v, f"{stat}{k}"), Z[1], Z[2]], axis=0) + v["range"]
    out["largest z"] = Z.max(axis=0) + v["range"]
    out["mean of the two largest z"] = np.sort(Z, axis=0)[1:].mean(axis=0) + v["range"]
    out["log-sum-exp of z"] = logsumexp(Z, axis=0) + v["range"]
    out["range: larger of it and the mean"] = np.maximum(Z.mean(axis=0), v["range"])
    level = float(np.quantile(v["range bare@all"], 0.95))
    out["range: level from all rows"] = Z.mean(axis=0) + np.maximum(v["range bare"] - level, 0) / (1 + level)
    out["range left out"] = Z.mean(axis=0)
    out["forest left out"] = Z[:2].mean(axis=0) + v["range"]
    out["forest and range left out"] = Z[:2].mean(axis=0)
    out["ECOD added"] = np.mean([*Z, z(v, "ecod")], axis=0) + v["range"]
    out["l2 with no cleaning"] = np.mean([Z[0], z(v, "l2 no cleaning"), Z[2]], axis=0) + v["range"]
    return out


def alone(v: dict) -> dict[str, np.ndarray]:
    names = (*STANDARDISED, "range", *(f"{s}{k}" for k in NEIGHBOURS for s in ("mean", "kth")), "ecod", "l2 no cleaning")
    return {f"alone: {n}": v[n] for n in names}


def grid_aurocs(sets: dict) -> dict[tuple, dict[str, float]]:
    """{(w_knn, w_l2, w_forest, w_range): {set: AUROC}} over the whole grid."""
    stacked = {name: (np.array([z(s["values"], p) for p in STANDARDISED]), s["values"]["range"]) for name, s in sets.items()}
    out = {}
    for w in itertools.product(WEIGHTS, WEIGHTS, WEIGHTS):
        if sum(w) == 0:
            continue
        for r in RANGE_WEIGHTS:
            weights = np.array(w, dtype=np.float64)[:, None] / sum(w)
            out[(*w, r)] = {name: auroc(sets[name]["y"], (weights * Z).sum(axis=0) + r * rng) for name, (Z, rng) in stacked.items()}
    return out


def family_means(aurocs: dict[str, float], sets: dict, families: list[str]) -> dict[str, float]:
    return {f: float(np.mean([a for name, a in aurocs.items() if sets[name]["family"] == f])) for f in families}


def peer_best(sets: dict, groups: dict[str, list[str]]) -> dict[str, tuple[str, float]]:
    """Each group's best peer (seed 0, from panel.csv): {group: (method, mean AUROC over its sets)}."""
    runs = {}
    for row in csv.DictReader((panel.RESULTS / "panel.csv").open()):
        if row["seed"] == "0" and row["method"] in PEERS and row["dataset"] in sets:
            runs.setdefault(row["method"], {})[row["dataset"]] = float(row["auroc"])
    best = {}
    for group, members in groups.items():
        means = {m: float(np.mean([runs[m][n] for n in members])) for m in PEERS if all(n in runs.get(m, {}) for n in members)}
        best[group] = max(means.items(), key=lambda kv: kv[1])
    return best


def describe(weights: tuple) -> str:
    return "knn {}, l2 {}, iforest {}; range {}".format(*weights)


def grid_lines(sets: dict, families: list[str], best: dict) -> list[str]:
    grid = grid_aurocs(sets)
    target = {f: best[f][1] for f in families}

    def summary(aurocs):
        means = family_means(aurocs, sets, families)
        return min(means[f] - target[f] for f in families), float(np.mean(list(means.values()))), means

    lines = ["| weights | worst family's gap to its best peer | mean of family means | " + " | ".join(families) + " |",
             "|---|---:|---:|" + "---:|" * len(families)]

    def line(label, result):
        gap, mofm, means = result
        lines.append(f"| {label} | {gap:+.4f} | {mofm:.4f} | " + " | ".join(f"{means[f]:.3f}" for f in families) + " |")

    scored = {w: summary(a) for w, a in grid.items()}
    line("the default: " + describe((1, 1, 1, 1)), scored[(1, 1, 1, 1)])
    closest = max(scored, key=lambda w: scored[w][0])
    line("closest to every peer: " + describe(closest), scored[closest])
    with_range = max((w for w in scored if w[3] > 0), key=lambda w: scored[w][0])
    line("closest, the range kept: " + describe(with_range), scored[with_range])
    line("best mean: " + describe(max(scored, key=lambda w: scored[w][1])), scored[max(scored, key=lambda w: scored[w][1])])
    for share in (10, 20):  # issue 29: deepuad ahead of every peer on clustered anomalies at 10 and 20 %
        members = [n for n in sets if n.endswith(f"+clustered_{share}")]
        top = max(grid, key=lambda w: np.mean([grid[w][n] for n in members]))
        line(f"best on clustered anomalies at {share} % ({np.mean([grid[top][n] for n in members]):.3f} there): "
             + describe(top), scored[top])
    for width in WIDTHS:
        wide = {n for n in sets if sets[n]["d"] >= width}
        if not wide or len(wide) == len(sets):
            continue
        # the narrow sets' weighting and the wide sets' are chosen apart, for the worst gap of their union
        pairs = ((a, b) for a in grid for b in grid)
        result = {}
        for narrow_w, wide_w in pairs:
            aurocs = {n: grid[wide_w if n in wide else narrow_w][n] for n in sets}
            result[(narrow_w, wide_w)] = summary(aurocs)
        narrow_w, wide_w = max(result, key=lambda p: result[p][0])
        line(f"two weightings, at {width} columns: narrow {describe(narrow_w)}; wide {describe(wide_w)}", result[(narrow_w, wide_w)])
        narrow_w, wide_w = max((p for p in result if p[0][3] > 0 and p[1][3] > 0), key=lambda p: result[p][0])
        line(f"the same, the range kept: narrow {describe(narrow_w)}; wide {describe(wide_w)}", result[(narrow_w, wide_w)])
    return lines


def signal_lines(sets: dict, cache_dir: Path) -> list[str]:
    lead, props = [], {"columns": [], "R^2 of the network on the kept rows": [], "participation ratio": []}
    for name, s in sets.items():
        cache = np.load(cache_dir / f"{name}_s0.npz")
        kept = np.asarray(cache["kept/reference"], dtype=np.float64)
        total = ((kept - kept.mean(axis=0)) ** 2).sum(axis=1).mean()
        props["columns"].append(s["d"])
        props["R^2 of the network on the kept rows"].append(1 - cache["kept/l2@ref"].mean() / max(total, 1e-12))
        eig = np.clip(np.linalg.eigvalsh(np.atleast_2d(np.cov(kept.T))), 0, None)
        props["participation ratio"].append(eig.sum() ** 2 / max((eig ** 2).sum(), 1e-12))
        a = {p: auroc(s["y"], s["values"][p]) for p in STANDARDISED}
        lead.append(a["iforest"] - max(a["knn"], a["l2"]))
    lines = ["| property | Spearman with the forest's lead |", "|---|---:|"]
    lines += [f"| {p} | {spearmanr(v, lead)[0]:+.2f} |" for p, v in props.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seed", type=int, required=True)
    parser.add_argument("--rerun-used-split", action="store_true", help=RERUN_HELP)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "parts_cache_split31")
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    args = parser.parse_args()
    refuse_used_split(args.split_seed, "score_frontier", args.rerun_used_split)
    warnings.filterwarnings("ignore")
    sets = {}
    for name, family, Xscore, y in scored_tuning_sets(args.split_seed, args.data_dir):
        sets[name] = {"family": family, "y": y, "d": Xscore.shape[1],
                      "values": set_values(np.load(args.cache / f"{name}_s0.npz"), Xscore)}
        print(name, flush=True)
    families = sorted({s["family"] for s in sets.values()})
    rows = []
    for name, s in sets.items():
        row = {"dataset": name, "family": s["family"], "columns": s["d"]}
        row.update({k: round(auroc(s["y"], v), 5) for k, v in {**alone(s["values"]), **shapes(s["values"])}.items()})
        rows.append(row)
    stem = panel.RESULTS / f"score_frontier_split{args.split_seed}"
    with open(f"{stem}.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    clustered = {share: [r for r in rows if r["dataset"].endswith(f"+clustered_{share}")] for share in (10, 20)}
    best = peer_best(sets, {**{f: [n for n in sets if sets[n]["family"] == f] for f in families},
                            **{share: [r["dataset"] for r in members] for share, members in clustered.items()}})
    lines = [f"# How far the default's parts can go (SPLIT_SEED {args.split_seed}, tuning half, seed 0)", "",
             "`python bench/score_frontier.py` (see its docstring). Mean AUROC per family; the last row of each "
             "table is each family's best peer.", "",
             "| | " + " | ".join(families) + " | mean of family means | clustered 10 % | clustered 20 % |",
             "|---|" + "---:|" * (len(families) + 3)]
    for column in [c for c in rows[0] if c not in ("dataset", "family", "columns")]:
        means = [np.mean([r[column] for r in rows if r["family"] == f]) for f in families]
        lines.append(f"| {column} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.4f} | "
                     + " | ".join(f"{np.mean([r[column] for r in clustered[s]]):.3f}" for s in (10, 20)) + " |")
    peer = [f"{best[g][1]:.3f} ({best[g][0]})" for g in families]
    lines.append("| best peer | " + " | ".join([*peer, "", *(f"{best[s][1]:.3f} ({best[s][0]})" for s in (10, 20))]) + " |")
    lines += ["", "Weightings chosen with the labels (an in-sample ceiling, not a candidate):", "",
              *grid_lines(sets, families, best), "",
              "Does a property of the data, known without labels, say when the forest leads?", "",
              *signal_lines(sets, args.cache)]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
