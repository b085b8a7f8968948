"""A spike in a later batch of wide pixel-like rows: does the default's network part need the squared error
beside the cosine error? Generated data, so that it can be rerun anywhere.

The rows: 300 columns, each blank but for rare strokes of any strength (normal rows lie far beyond some
column's range by chance, so the package's default takes its wide-data parts, parts.resolve). DeepUAD at the
package's defaults is fitted on 800 such rows; a later batch of 400 gets 20 spikes, one column each at its
maximum plus ten times its range over the fitted rows. Per score, the share of spiked rows above the 99th
percentile of the untouched rows' scores (issue 29's goal: 1.0), at three seeds of the data: the default, and
from its own robust z-scores the k-NN part beside the cosine error alone, beside the squared error alone, and
each of the three alone.

    python bench/wide_spike_strokes.py       # -> bench/results/wide_spike_strokes.md (about a minute)
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
import panel  # noqa: E402
import synthetic  # noqa: E402

from deepuad.estimators.detector import DeepUAD  # noqa: E402

SEEDS = (2, 5, 8)
SCORES = ("default", "knn+cosine", "knn+l2", "knn", "l2", "cosine")


def strokes(n: int, seed: int, columns: int = 300) -> np.ndarray:
    """Pixel-like rows: every column blank but for rare strokes (2 %) of any strength."""
    rng = np.random.default_rng(seed)
    return ((rng.random((n, columns)) < 0.02) * rng.random((n, columns)) ** 4).astype(np.float32)


def recalls(seed: int) -> dict[str, float]:
    X, later = strokes(800, seed), strokes(400, seed + 1)
    rng = np.random.default_rng(4)
    spiked = rng.choice(len(later), size=panel.SPIKES, replace=False)
    columns = rng.choice(np.flatnonzero(X.max(axis=0) > X.min(axis=0)), size=panel.SPIKES)
    later[spiked, columns] = X.max(axis=0)[columns] + synthetic.SPIKE_HEIGHT * (X.max(axis=0) - X.min(axis=0))[columns]
    y = np.isin(np.arange(len(later)), spiked).astype(int)
    detector = DeepUAD(seed=0).fit(X)
    values = detector.score_parts(later)
    z = {p: (values[p] - c) / s for p, c, s in zip(detector.score_parts_, detector.score_center_, detector.score_scale_)}
    scores = {"default": detector.decision_function(later), "knn+cosine": (z["knn"] + z["cosine"]) / 2,
              "knn+l2": (z["knn"] + z["l2"]) / 2, **{p: z[p] for p in ("knn", "l2", "cosine")}}
    return {"parts": "+".join(detector.score_parts_),
            **{name: synthetic.spike_recall(np.asarray(s, dtype=np.float64), y) for name, s in scores.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=panel.RESULTS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    lines = ["# A spike in a later batch of wide pixel-like rows (generated)", "",
             "`python bench/wide_spike_strokes.py` (see its docstring). Share of the 20 spiked rows above the 99th "
             "percentile of the untouched rows' scores.", "",
             "| data seed | the default's parts | " + " | ".join(SCORES) + " |", "|---|---|" + "---:|" * len(SCORES)]
    for seed in SEEDS:
        found = recalls(seed)
        lines.append(f"| {seed} | {found['parts']} | " + " | ".join(f"{found[s]:.2f}" for s in SCORES) + " |")
        print(lines[-1], flush=True)
    path = args.results / "wide_spike_strokes.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
