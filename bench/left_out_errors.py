"""Why the error re-selection cannot win back a normal mode the initial clustering left out.

    python bench/left_out_errors.py --split runs/kdd_table/c5_s1 --model rule_error.model.h5

Computes the cosine errors h(x) of the split's train half with a model's network (default: the
error-rule model bench/reselect_rules.py trained; whatever score the model was trained with, this
is the error re-selection sees) and compares three groups of rows, by the model's last selection
and the labels it never saw: selected normal rows, normal rows left out, anomalies.
Writes bench/results/left_out_errors.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepuad.estimators.autoencoder import encode_and_score  # noqa: E402
from deepuad.artifacts.features import load_features  # noqa: E402
from deepuad.stages._common import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, default=Path("runs/kdd_table/c5_s1"))
    parser.add_argument("--model", default="rule_error.model.h5")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "left_out_errors.md")
    args = parser.parse_args()
    model = args.split / args.model
    features = load_features(args.split / "train.features.h5")
    detector, _ = load_model(model)
    error = encode_and_score(detector.model_, features["X"])[1].astype(np.float64)
    anomaly = np.asarray(features["y"]).astype(bool)
    with h5py.File(model) as f:
        last = max(f["iterations"], key=int)
        selected_rows = f[f"iterations/{last}/selected"][:]
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
