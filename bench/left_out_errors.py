"""Why the error re-selection cannot win back a normal mode the initial clustering left out.

    python bench/left_out_errors.py --split runs/kdd_table/c5_s1 --model rule_error.model.h5

Scores the split's train half with a model (default: the error-rule model bench/reselect_rules.py
trained) and compares the cosine errors of three groups of rows, by the model's last selection
and the labels it never saw: selected normal rows, normal rows left out, anomalies.
Writes bench/results/left_out_errors.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from kddcup import deepuad  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=Path("runs/kdd_table/c5_s1"))
    parser.add_argument("--model", default="rule_error.model.h5")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "left_out_errors.md")
    args = parser.parse_args()
    model, scores = args.split / args.model, args.split / (args.model.replace(".model.h5", "") + ".train.scores.h5")
    deepuad("score", str(model), str(args.split / "train.features.h5"), "-o", str(scores))
    with h5py.File(model) as f:
        last = max(f["iterations"], key=int)
        selected_rows = f[f"iterations/{last}/selected"][:]
    with h5py.File(scores) as f:
        error, anomaly = f["score"][:].astype(np.float64), f["y"][:].astype(bool)
    selected = np.zeros(len(error), bool)
    selected[selected_rows] = True
    lines = [f"# Cosine error by group: `{model}` on its train half", "",
             f"Regenerate: `python bench/left_out_errors.py --split {args.split} --model {args.model}`.", "",
             "| group | rows | error 5th pct | median | 95th pct |", "|---|---|---|---|---|"]
    for name, group in (("selected normal", selected & ~anomaly), ("normal left out", ~selected & ~anomaly),
                        ("anomaly", anomaly)):
        q = np.percentile(error[group], [5, 50, 95]) if group.any() else [np.nan] * 3
        lines.append(f"| {name} | {int(group.sum())} | {q[0]:.4f} | {q[1]:.4f} | {q[2]:.4f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
