"""Which of the network's errors to put beside the k-NN part on images: the squared error (``l2``, the
default's) or the paper's cosine error h(x) = 1 - cos(x, decode(encode(x))). An exploration of a
split's tuning half, before a round's candidates.

Every image set of the tuning half (CIFAR-10 embeddings, MNIST, scikit-learn's digits; bench/panel.py),
seed 0, in two forms:

* ``as is``: the panel's rows (pixels and ResNet-18 embeddings are non-negative, mostly zero; the
  wide ones take the default's wide-data parts, parts.resolve);
* ``rotated``: the same rows times a seeded random orthogonal matrix, then min-max scaled: the same
  distances between rows, but every column a mixture of all of them (dense, as text embeddings are),
  where no column means anything alone.

Columns: the package's default (``default``, as ``auto`` resolves it on the set), each part alone, the
k-NN part with each network error (the mean of their robust z-scores), the default less its tails part,
and PyOD's 5-NN and ECOD as run on the panel. One fit per set and form (bench/parts_panel.py's
``fit_and_cache``; every score from it).

    python bench/network_parts.py --split-seed 50       # -> bench/results/network_parts_split50.md
    python bench/network_parts.py --split-seed 50 --half held-out    # -> network_parts_split50_held-out.md

It refuses a tuning half whose held-out half has run (an exploration for a next round), and a held-out
half that has not (read only after a freeze, as a check of what it changed). About two minutes.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import parts_panel  # noqa: E402
from cleaning_variants import RERUN_HELP, USED_SPLITS, refuse_used_split  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / "runs" / "parts_cache_network"
DEFAULT = score_parts.parts_of(DEFAULTS["score"])
COLUMNS = {"knn": ("knn",), "l2": ("l2",), "cosine": ("cosine",), "tails": ("tails",), "range": ("range",),
           "knn+l2": ("knn", "l2"), "knn+cosine": ("knn", "cosine"), "knn+l2+cosine": ("knn", "l2", "cosine"),
           "no tails": tuple(p for p in DEFAULT if p != "tails")}
PEERS = ("knn", "ecod")


def rotated(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """X times a seeded random orthogonal matrix, min-max scaled: the same geometry, dense columns."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((X.shape[1], X.shape[1])))
    return panel._minmax(np.asarray(X, dtype=np.float64) @ q)[0]


def row(name: str, X: np.ndarray, y: np.ndarray) -> dict:
    """AUROC of every column on the rows X (fitted and scored), labels y."""
    cache = parts_panel.Values(np.load(parts_panel.fit_and_cache(name, X, X, y, 0)), X, 0)
    out = {**parts_panel.aurocs(cache, y, COLUMNS)}
    for peer in PEERS:
        out[f"pyod {peer}"] = float(roc_auc_score(y, panel.run_method(peer, X, X, 0, None)[0]))
    return out


def table(rows: list[tuple[str, str, dict]], split_seed: int, half: str = "tuning") -> str:
    columns = ["default", *COLUMNS, *(f"pyod {p}" for p in PEERS)]
    lines = [f"# The network's error beside the k-NN part, on images (SPLIT_SEED {split_seed}, {half} half, seed 0)", "",
             "`python bench/network_parts.py` (see its docstring). AUROC; `wide`: the set takes the default's wide-data "
             "parts (parts.resolve).", ""]
    for form in ("as is", "rotated"):
        mine = [(name, r) for f, name, r in rows if f == form]
        lines += [f"Rows {form}:", "", "| set | wide | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
        lines += [f"| {name} | {'yes' if r['wide'] else ''} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |"
                  for name, r in mine]
        for label, members in (("mean, wide sets", [r for _, r in mine if r["wide"]]), ("mean, all sets", [r for _, r in mine])):
            if members:
                lines.append(f"| **{label}** ({len(members)}) | | " + " | ".join(
                    f"**{np.mean([r[c] for r in members]):.4f}**" for c in columns) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seed", type=int, required=True)
    parser.add_argument("--rerun-used-split", action="store_true", help=RERUN_HELP)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    parser.add_argument("--results", type=Path, default=panel.RESULTS)
    parser.add_argument("--half", choices=("tuning", "held-out"), default="tuning")
    args = parser.parse_args()
    if args.half == "tuning":
        refuse_used_split(args.split_seed, "network_parts", args.rerun_used_split)
    elif args.split_seed not in USED_SPLITS:
        sys.exit(f"network_parts: split {args.split_seed}'s held-out half has not run; it is read after a freeze only")
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    parts_panel.CACHE = args.cache
    catalog = panel.catalog(2000, args.data_dir, args.data_dir / "odds_adbench")
    halves = panel.split(catalog, args.split_seed)
    rows = []
    for name, family, _, load in catalog:
        if family != "images" or halves[name] != args.half:
            continue
        X, y = load()[:2]
        for form, rows_of in (("as is", X), ("rotated", rotated(X))):
            rows.append((form, name, row(f"{name}_{form.replace(' ', '_')}", rows_of, y)))  # a set's fit, whatever the split
            print(form, name, {k: v if isinstance(v, str) else round(v, 4) for k, v in rows[-1][2].items()}, flush=True)
    suffix = "" if args.half == "tuning" else "_held-out"
    path = args.results / f"network_parts_split{args.split_seed}{suffix}.md"
    path.write_text(table(rows, args.split_seed, args.half))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
