"""KDDCUP99 under the paper's protocol (DESIGN.md, "Evaluation protocols"), through the CLI.

    python bench/kddcup.py --contamination 0.2 --seed 0 --workdir runs/kdd_c20_s0 [-- extra 'deepuad train' options]

1. The 10% file is split 50/50 at random (seed). The train half keeps all attack rows plus
   original-"normal." rows (the ANOMALY class) sampled to the given contamination (capped by
   what the half holds); the test half is kept whole.
2. Both halves are written as CSV with a header, then run through the stages exactly as a
   user would: extract (label column kept out of the features), extract --like, cluster, train,
   score the test half. Each command, its JSON summary and its wall time are printed, and the
   whole record is written to WORKDIR/result.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kddcup99"


def make_split(data: Path, workdir: Path, contamination: float, seed: int, limit: int | None) -> dict:
    names = [line.split(":")[0] for line in (data / "kddcup.names").read_text().splitlines()[1:] if ":" in line]
    rows = gzip.open(data / "kddcup.data_10_percent.gz", "rt").read().splitlines()
    rng = np.random.default_rng(seed)
    if limit:
        rows = [rows[i] for i in np.sort(rng.choice(len(rows), size=limit, replace=False))]
    is_anomaly = np.array([r.endswith(",normal.") for r in rows])
    order = rng.permutation(len(rows))
    train_half, test_half = np.sort(order[: len(rows) // 2]), np.sort(order[len(rows) // 2 :])
    attacks = train_half[~is_anomaly[train_half]]
    anomalies = train_half[is_anomaly[train_half]]
    wanted = int(round(contamination / (1 - contamination) * len(attacks)))
    anomalies = rng.choice(anomalies, size=min(wanted, len(anomalies)), replace=False)
    train_rows = np.sort(np.concatenate([attacks, anomalies]))
    header = ",".join(names + ["label"]) + "\n"
    for name, index in (("train.csv", train_rows), ("test.csv", test_half)):
        with open(workdir / name, "w") as out:
            out.write(header)
            out.writelines(rows[i] + "\n" for i in index)
    return {"train_rows": len(train_rows), "train_contamination": float(is_anomaly[train_rows].mean()),
            "test_rows": len(test_half), "test_contamination": float(is_anomaly[test_half].mean())}


def deepuad(*args: str) -> tuple[dict, float]:
    command = [sys.executable, "-m", "deepuad", *args, "--json"]
    print("$ deepuad " + " ".join(shlex.quote(a) for a in args), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {done.stderr.strip()}")
    summary = json.loads(done.stdout)
    print(f"  {seconds:.1f} s  {json.dumps(summary)}", flush=True)
    return summary, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contamination", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="use a random subset of this many rows (smoke runs)")
    parser.add_argument("--p0", default="35")
    parser.add_argument("--percentile-over", default="clusters")
    parser.add_argument("train_args", nargs="*", help="extra options for 'deepuad train' (after --)")
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    record = {"protocol": vars(args) | {"workdir": str(work), "data": str(args.data)}}
    start = time.perf_counter()
    record["split"] = make_split(args.data, work, args.contamination, args.seed, args.limit)
    print(json.dumps(record["split"]), flush=True)
    f, c, m = str(work / "train.features.h5"), str(work / "train.clusters.h5"), str(work / "train.model.h5")
    steps = {
        "extract": ("extract", str(work / "train.csv"), "--label-column", "label", "--anomaly-values", "normal.", "-o", f),
        "extract_test": ("extract", str(work / "test.csv"), "--like", f, "-o", str(work / "test.features.h5")),
        "cluster": ("cluster", f, "--p0", args.p0, "--percentile-over", args.percentile_over, "--seed", str(args.seed), "-o", c),
        "train": ("train", f, c, "--seed", str(args.seed), "--percentile-over", args.percentile_over, "-o", m, *args.train_args),
        "score_test": ("score", m, str(work / "test.features.h5"), "-o", str(work / "test.scores.h5")),
    }
    for name, step in steps.items():
        summary, seconds = deepuad(*step)
        record[name] = summary | {"seconds": round(seconds, 2)}
    record["wall_seconds"] = round(time.perf_counter() - start, 1)
    record["test_auroc"], record["test_auprc"] = record["score_test"]["auroc"], record["score_test"]["auprc"]
    (work / "result.json").write_text(json.dumps(record, indent=2))
    print(f"test AUROC {record['test_auroc']:.4f}  AUPRC {record['test_auprc']:.4f}  wall {record['wall_seconds']} s")


if __name__ == "__main__":
    main()
