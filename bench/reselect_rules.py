"""Which re-selection rule, on KDDCUP splits at 5 / 10 / 20 % contamination (the evidence behind the default).

    python bench/reselect_rules.py --splits c5_s0 c5_s1 c5_s3 c10_s1 c10_s3 c20_s1 --workdir runs/kdd_table

Each split folder (made by bench/kdd_table.py) holds train/test features and ``clusters.h5``
(``cluster --p0 35 --seed S``). From that same initial set, ``train`` runs with each rule and
the test half is scored:

* error:             ``--reselect-by error`` (the (100 - p)% lowest errors)
* gmm samples:       ``--reselect-by variance`` (the paper's GMM on z), percentile over samples: the default
* gmm clusters:      the same with ``--percentile-over clusters`` (the paper's literal percentile)

Writes bench/results/reselect_rules.md (+ .csv): test AUROC / AUPRC in %, epochs, rows selected at the end.

Smoke runs (tests/test_bench_smoke.py): ``--rules`` runs only some rules (error, gmm-samples,
gmm-clusters), ``--epochs N`` caps train's epoch budget (default: the CLI's 200), ``--out`` keeps
the table out of the repository, e.g.

    python bench/reselect_rules.py --workdir $TMPDIR/kdd --splits c20_s0 --rules error --epochs 1 --out $TMPDIR/rules.md
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from kddcup import deepuad  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RULES = {
    "error": ["--reselect-by", "error"],
    "gmm samples (default)": ["--reselect-by", "variance", "--percentile-over", "samples"],
    "gmm clusters": ["--reselect-by", "variance", "--percentile-over", "clusters"],
}
SHORT = dict(zip(["error", "gmm-samples", "gmm-clusters"], RULES))  # --rules names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["c5_s0", "c5_s1", "c5_s3", "c10_s1", "c10_s3", "c20_s1"])
    parser.add_argument("--workdir", type=Path, default=Path("runs/kdd_table"))
    parser.add_argument("--out", type=Path, default=RESULTS / "reselect_rules.md")
    parser.add_argument("--rules", nargs="+", choices=list(SHORT), default=list(SHORT), help="[default: all]")
    parser.add_argument("--epochs", type=int, default=None, help="train --epochs (default: the CLI's budget; smoke runs)")
    args = parser.parse_args()
    rules = [SHORT[name] for name in args.rules]
    budget = ["--epochs", str(args.epochs)] if args.epochs else []
    rows = []
    for split in args.splits:
        work = args.workdir / split
        seed = split.split("_s")[1]
        for rule in rules:
            options = RULES[rule]
            tag = rule.split()[0] + ("_clusters" if "clusters" in rule else "")
            model = work / f"rule_{tag}.model.h5"
            trained, _ = deepuad("train", str(work / "train.features.h5"), str(work / "clusters.h5"), "--seed", seed,
                                 *options, *budget, "-o", str(model))
            scored, _ = deepuad("score", str(model), str(work / "test.features.h5"), "-o", str(work / f"rule_{tag}.scores.h5"))
            rows.append({"split": split, "rule": rule, "auroc": round(scored["auroc"] * 100, 1),
                         "auprc": round(scored["auprc"] * 100, 1), "epochs": trained["epochs"],
                         "stop": trained["stop_reason"], "selected": trained["selected"], "rows": trained["rows"]})
            write(rows, args.out, rules)


def write(rows: list[dict], out: Path, rules: list[str] = list(RULES)) -> None:
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# Re-selection rules on KDDCUP splits: test AUROC / AUPRC in % (same initial set per split)", "",
             "Regenerate: `python bench/reselect_rules.py` (see its docstring). Split cC_sS = C % contamination, seed S.", "",
             "| split | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
    for split in dict.fromkeys(r["split"] for r in rows):
        cells = []
        for rule in rules:
            r = next((r for r in rows if r["split"] == split and r["rule"] == rule), None)
            cells.append(f"{r['auroc']} / {r['auprc']} ({r['epochs']} ep, {r['selected'] / r['rows']:.0%} kept)" if r else "")
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
