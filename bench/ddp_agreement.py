"""How far a 2-process (torchrun, gloo) training run ends from a 1-process one, per re-selection rule.

    python bench/ddp_agreement.py --input sample_data/kddcup99_5k.csv.gz

Extracts and clusters the input once, trains with 1 and with 2 processes for each rule, scores
the training rows with both models and reports: rows whose selection differs at each common
re-selection, re-selections done, the largest score difference, and train AUROC of each.
Writes bench/results/ddp_agreement.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def deepuad(*args, processes: int = 1) -> None:
    launcher = [sys.executable, "-m", "deepuad"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", "-m", "deepuad"]
    subprocess.run([*launcher, "--quiet", *map(str, args)], env=ENV, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("sample_data/kddcup99_5k.csv.gz"))
    parser.add_argument("--rules", nargs="+", default=["variance", "error"])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deepuad_bench_ddp_agreement")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ddp_agreement.md")
    args = parser.parse_args()
    from deepuad.estimators.metrics import ranking_metrics

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    features, clusters = work / "f.features.h5", work / "f.clusters.h5"
    deepuad("extract", args.input, "--label-column", "label", "--anomaly-values", "normal.", "-o", features)
    deepuad("cluster", features, "-o", clusters)
    lines = [f"# 1 vs 2 training processes on `{args.input}` (default options otherwise)", "",
             f"Regenerate: `python bench/ddp_agreement.py --input {args.input}`.", "",
             "| --reselect-by | rows selected differently per re-selection | re-selections 1 / 2 proc | max score difference | "
             "train AUROC 1 proc | train AUROC 2 proc |", "|---|---|---|---|---|---|"]
    for rule in args.rules:
        runs = {}
        for n in (1, 2):
            model, scores = work / f"{rule}.{n}.model.h5", work / f"{rule}.{n}.scores.h5"
            deepuad("train", features, clusters, "--reselect-by", rule, "-o", model, processes=n)
            deepuad("score", model, features, "-o", scores)
            with h5py.File(model) as f:
                selections = [f[f"iterations/{k}/selected"][:] for k in sorted(f["iterations"], key=int)]
            with h5py.File(scores) as f:
                runs[n] = (selections, f["score"][:], f["y"][:])
        (sel1, s1, y), (sel2, s2, _) = runs[1], runs[2]
        differ = [len(np.setxor1d(a, b)) for a, b in zip(sel1, sel2)]
        lines.append(f"| {rule} | {', '.join(map(str, differ))} | {len(sel1) - 1} / {len(sel2) - 1} | "
                     f"{np.abs(s1 - s2).max():.4f} | {ranking_metrics(y, s1)['auroc']:.4f} | {ranking_metrics(y, s2)['auroc']:.4f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
