"""The synthetic and spike families again, planted in tables that no round has used as a base: a check of
the frozen default on data nobody tuned on (the panel's synthetic and spike sets are all built on its eight
bases, bench/panel.py BASES, and every candidate was chosen on some of them).

    python bench/unseen_bases.py --work runs/unseen_bases/a --methods deepuad iforest knn ecod pyod-ae
    python bench/unseen_bases.py --work runs/unseen_bases/b --methods dif          # in parallel, if cores allow
    python bench/unseen_bases.py --table-only                                      # -> bench/results/unseen_bases.csv, .md
    python bench/unseen_bases.py --reserved --work runs/reserved_bases/a ...       # the same on the reserved bases
    python bench/unseen_bases.py --reserved --table-only                           # -> bench/results/reserved_bases.csv, .md

The bases: every ADBench table of the data folder that is not one of the panel's bases, has at least 1,000
normal rows and at most 100 columns, eight of them drawn with numpy's default_rng(0) (``new_bases``; the rule
was fixed before any run). On each, bench/panel.py plants the four ADBench anomaly types at 1, 5, 10 and 20 %
and the spikes, as for the panel (``--bases``), and runs each method at seed 0. The panel's split does not
apply here: every set is out of sample. The table: each family's mean AUROC and mean rank per method, the
synthetic types by share, and the planted spikes each method leaves at or below the normal rows' 99th
percentile (issue 29's gate).

``--reserved``: the same on the eligible tables that are neither the panel's bases nor the eight
(``reserved``), which were left unread for a next round's held-out half: run once, after that round's
freeze.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import synthetic  # noqa: E402

RESULTS = panel.RESULTS / "unseen_bases"


def eligible_bases(adbench_dir: Path) -> list[str]:
    """The tables that are not the panel's bases, with at least 1,000 normal rows and at most 100 columns, in
    the catalog's order."""
    eligible = []
    for path in sorted(adbench_dir.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0])):
        with np.load(path, allow_pickle=False) as data:
            X, y = data["X"], data["y"]
            if path.stem not in panel.BASES and (y == 0).sum() >= 1000 and X.shape[1] <= 100:
                eligible.append(path.stem)
    return eligible


def new_bases(adbench_dir: Path) -> list[str]:
    """Eight of ``eligible_bases`` drawn with default_rng(0), in the catalog's order."""
    eligible = eligible_bases(adbench_dir)
    chosen = set(np.random.default_rng(0).choice(eligible, size=min(8, len(eligible)), replace=False))
    return [name for name in eligible if name in chosen]


def reserved(adbench_dir: Path) -> list[str]:
    """The eligible tables that are not ``new_bases``: a next round's held-out bases."""
    drawn = set(new_bases(adbench_dir))
    return [name for name in eligible_bases(adbench_dir) if name not in drawn]


def summary(rows: list[dict], title: str = "bases no round has used") -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    auroc = {(r["dataset"], r["method"]): float(r["auroc"]) for r in rows}
    family = {r["dataset"]: r["family"] for r in rows}
    sets = sorted({d for d, _ in auroc if all((d, m) in auroc for m in methods)})
    ranks = {d: dict(zip(methods, rankdata([-auroc[d, m] for m in methods]))) for d in sets}

    def line(label, members):
        means = [np.mean([auroc[d, m] for d in members]) for m in methods]
        best = max(means)
        return f"| {label} | {len(members)} | " + " | ".join(f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in means) + " |"

    head = "| | sets | " + " | ".join(methods) + " |\n|---|---:|" + "---:|" * len(methods)
    out = [f"# The synthetic and spike families on {title} (seed 0)", "",
           f"`python bench/unseen_bases.py` (see its docstring). Bases: {', '.join(sorted({d.split('+')[0] for d in sets}))}.",
           f"{len(sets)} sets that every method finished.", "", "Mean AUROC per family (best in bold), and the mean rank over all sets:", "", head]
    for fam in ("synthetic", "spikes"):
        out.append(line(fam, [d for d in sets if family[d] == fam]))
    out.append("| mean rank | | " + " | ".join(f"{np.mean([ranks[d][m] for d in sets]):.2f}" for m in methods) + " |")
    out += ["", "Synthetic anomalies by type and share:", "", head]
    groups = sorted({d.split("+")[1] for d in sets if family[d] == "synthetic"}, key=synthetic.type_and_share)
    out += [line(g, [d for d in sets if d.endswith("+" + g)]) for g in groups]
    out += [line(f"{kind}, every share", members) for kind in synthetic.KINDS
            if (members := [d for d in sets if f"+{kind}_" in d])]
    recalls = {m: [float(r["spike_recall"]) for r in rows if r["method"] == m and r["spike_recall"] != ""] for m in methods}
    missed = {m: sum(round((1 - recall) * panel.SPIKES) for recall in recalls[m]) for m in methods}
    spike_sets = {m: sum(recall < 1 for recall in recalls[m]) for m in methods}
    out += ["", f"Planted spikes at or below the normal rows' 99th percentile ({panel.SPIKES} per set; the sets with any):", "",
            "| | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods),
            "| spikes missed | " + " | ".join(str(missed[m]) for m in methods) + " |",
            "| sets with a miss | " + " | ".join(str(spike_sets[m]) for m in methods) + " |"]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/unseen_bases/a"), help="this run's panel.csv folder")
    parser.add_argument("--methods", nargs="+", default=["deepuad", "iforest", "knn", "ecod", "pyod-ae", "dif"])
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget of every deep method (smoke runs)")
    parser.add_argument("--table-only", action="store_true", help="merge every run folder beside --work into the results")
    parser.add_argument("--results", type=Path, default=panel.RESULTS)
    parser.add_argument("--reserved", action="store_true", help="the reserved bases (a held-out half), not the eight")
    args = parser.parse_args()
    bases = (reserved if args.reserved else new_bases)(args.data_dir / "odds_adbench")
    if not args.table_only:
        print("bases:", " ".join(bases), flush=True)
        subprocess.run([sys.executable, str(Path(__file__).parent / "panel.py"), "--results", str(args.work), "--bases", *bases,
                        "--families", "synthetic", "spikes", "--seeds", "0", "--methods", *args.methods, "--resume",
                        "--data-dir", str(args.data_dir), *(["--epochs", str(args.epochs)] if args.epochs else [])], check=True)
        return
    rows = [r for csv_path in sorted(args.work.parent.glob("*/panel.csv")) for r in csv.DictReader(csv_path.open())]
    out = args.results / ("reserved_bases.csv" if args.reserved else "unseen_bases.csv")
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    title = "the reserved bases, a held-out half no round has read" if args.reserved else "bases no round has used"
    out.with_suffix(".md").write_text(summary(rows, title))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
