"""How clean is the training set the cleaning keeps? For every panel set, the anomaly share among
the rows DeepUAD kept (a seeded sample of them, as the cached fit stores it) over the anomaly share
of all the rows it was fitted on: 0 = every anomaly left out, 1 = no better than keeping rows at
random. Labels are read here only, to measure; the cleaning never sees them.

    python bench/cleaning_purity.py --cache runs/parts_cache_split31     # -> bench/results/cleaning_purity.md

Reads the fits bench/parts_panel.py caches (the package's cleaning at its defaults, seed 0); a set
without a cached fit is skipped and counted. Grouped by family, and the synthetic family by anomaly
type; both halves of bench/panel.py's split (the cleaning is the same in both: no choice is made here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def kept_share_ratio(X: np.ndarray, y: np.ndarray, kept_rows: np.ndarray) -> float:
    """Anomaly share among ``kept_rows`` (rows of X, matched by value; a value several rows share
    counts their mean label) over the anomaly share of X."""
    labels: dict[bytes, list[int]] = {}
    for row, label in zip(np.asarray(X, dtype=np.float32), y):
        labels.setdefault(row.tobytes(), []).append(int(label))
    kept = [np.mean(labels[row.tobytes()]) for row in np.asarray(kept_rows, dtype=np.float32) if row.tobytes() in labels]
    return float(np.mean(kept) / np.mean(y)) if kept and np.mean(y) > 0 else float("nan")


def group_of(name: str, family: str) -> str:
    return name.split("+")[1].rsplit("_", 1)[0] if family == "synthetic" else family


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "parts_cache")
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    parser.add_argument("--output", type=Path, default=panel.RESULTS / "cleaning_purity.md")
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {}
    missing: list[str] = []
    for name, family, _, load in panel.catalog(2000, args.data_dir, args.data_dir / "odds_adbench"):
        path = args.cache / f"{name}_s0.npz"
        if not path.exists():
            missing.append(name)
            continue
        Xfit, yfit, _, _ = load()
        if yfit.min() == yfit.max():
            continue
        ratio = kept_share_ratio(Xfit, yfit, np.load(path)["kept/reference"])
        ratios.setdefault(group_of(name, family), []).append(ratio)
        print(f"{name:28s} {ratio:.2f}", flush=True)
    lines = ["# How clean is the kept set?", "",
             "Anomaly share among the rows the cleaning kept, over the anomaly share of all rows fitted "
             "(`python bench/cleaning_purity.py`; 0 = every anomaly left out, 1 = no better than chance). "
             "Seed 0, the package's cleaning at its defaults. Without a cached fit, skipped: "
             + (", ".join(missing) or "none") + ".", "",
             "| sets of | sets | median | quartiles | sets below 0.5 |", "|---|---:|---:|---|---:|"]
    for group, values in ratios.items():
        v = np.array([x for x in values if np.isfinite(x)])
        q1, q2, q3 = np.quantile(v, [0.25, 0.5, 0.75])
        lines.append(f"| {group} | {len(v)} | {q2:.2f} | {q1:.2f}-{q3:.2f} | {int((v < 0.5).sum())} |")
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
