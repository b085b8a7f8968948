"""Cleaning rules side by side, on one half of a split: the package's default score on top of each
configuration of the cleaning (DeepUAD's init_by, reselect_by, trim_cutoff, cluster_cutoff), one
fit per set and configuration at seed 0. An exploration for a *next* round of the protocol
(bench/choose_defaults.py), so it reads the tuning half of a split that no round has used yet and
refuses a held-out half:

    python bench/cleaning_variants.py --split-seed 45 --part 0/2    # and 1/2 in a second process
    python bench/cleaning_variants.py --split-seed 45 --table-only  # -> bench/results/cleaning_variants_split45.md

Each process appends its sets to cleaning_variants_split<seed>.csv (resumable: a set already there
is skipped); the table gives the mean AUROC per family (the synthetic family per anomaly type and
share too) and the mean of family means. A cleaning that chooses per data needs a signal that says,
without labels, when trim beats the paper's rule: the CSV also records, per set, the share of rows
that are copies of another, the share each cleaning kept, and how much the two kept sets overlap
(Jaccard), and the table gives each one's rank correlation with trim's gain in AUROC.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import synthetic  # noqa: E402

VARIANTS: dict[str, dict] = {
    "paper (default)": {},
    "trim": {"init_by": "trim", "reselect_by": "trim"},
    "trim, cutoff 1.0": {"init_by": "trim", "reselect_by": "trim", "trim_cutoff": 1.0},
    "trim, cutoff 0.5": {"init_by": "trim", "reselect_by": "trim", "trim_cutoff": 0.5},
    "trim, clusters 3": {"init_by": "trim", "reselect_by": "trim", "cluster_cutoff": 3.0},
    "trim to start": {"init_by": "trim"},
    "trim to re-select": {"reselect_by": "trim"},
}
USED_SPLITS = (29, 31, 37, 42, 43, 45, 48, 50, 51)  # seeds whose held-out half has run


def refuse_used_split(split_seed: int, script: str, rerun: bool = False) -> None:
    """Exit with a message where ``split_seed``'s held-out half has run: explorations for a next round read
    the tuning half of a fresh split only. ``rerun`` (--rerun-used-split) lets a committed table of a used
    split be regenerated, as a check of what it says, not as a new exploration."""
    if split_seed in USED_SPLITS and not rerun:
        sys.exit(f"{script}: split {split_seed}'s held-out half has run; explore on a fresh split "
                 "(--rerun-used-split regenerates a committed table)")


FITS = Path(__file__).resolve().parents[1] / "runs" / "parts_cache"  # the cached fits the explorations read (bench/parts_panel.py's)
RERUN_HELP = "regenerate a committed table of a split whose held-out half has run (a check, not an exploration)"

# label-free signals recorded per set (see the module docstring)
SIGNALS = ("copies", "paper kept", "trim kept", "overlap")


def group_of(name: str, family: str) -> str:
    return name.split("+")[1] if family == "synthetic" else family


def best_peer(members: list[str], peers: dict[str, dict[str, float]]) -> str:
    """The peer with the best mean AUROC over ``members`` (from panel.csv), as "0.998 (ecod)"; "" if none ran on all."""
    means = {m: np.mean([runs[n] for n in members]) for m, runs in peers.items() if all(n in runs for n in members)}
    return f"{max(means.values()):.3f} ({max(means, key=means.get)})" if means else ""


def peer_runs() -> dict[str, dict[str, float]]:
    """{peer: {set: AUROC}}: the peers' seed-0 runs (panel.csv), for the goal beside each row."""
    peers: dict[str, dict[str, float]] = {}
    panel_csv = panel.RESULTS / "panel.csv"
    for r in csv.DictReader(panel_csv.open()) if panel_csv.exists() else ():
        if r["method"] in panel.PEERS and r["seed"] == "0":
            peers.setdefault(r["method"], {})[r["dataset"]] = float(r["auroc"])
    return peers


def side_by_side(rows: list[dict], columns, title: str, script: str) -> str:
    """An exploration's table: the mean AUROC of each of ``columns`` (keys of ``rows``, one per set) per
    family (panel order), their mean of family means, and per synthetic type and share, each with the best
    peer on the same sets beside it (panel.csv, seed 0)."""
    from panel_tables import FAMILY_ORDER

    peers = peer_runs()
    members: dict[str, list[dict]] = {}
    for r in rows:
        for key in {r["family"], group_of(r["dataset"], r["family"])}:
            members.setdefault(key, []).append(r)

    def mean(key: str, column: str) -> float:
        return float(np.mean([float(r[column]) for r in members[key]]))

    def line(key: str) -> str:
        return (f"| {key} | {len(members[key])} | " + " | ".join(f"{mean(key, c):.3f}" for c in columns)
                + f" | {best_peer([r['dataset'] for r in members[key]], peers)} |")
    families = [f for f in FAMILY_ORDER if f in members]
    groups = sorted({group_of(r["dataset"], r["family"]) for r in rows if r["family"] == "synthetic"},
                    key=synthetic.type_and_share)
    head = ["| | sets | " + " | ".join(columns) + " | best peer |", "|---|---:|" + "---:|" * len(columns) + "---:|"]
    return "\n".join([f"# {title}", "", f"`python bench/{script}.py` (see its docstring); mean AUROC.", "",
                      "By family, and the mean of family means:", "", *head, *(line(f) for f in families),
                      "| **mean of family means** | | " + " | ".join(f"**{np.mean([mean(f, c) for f in families]):.4f}**"
                                                                   for c in columns) + " | |",
                      "", "Synthetic anomalies by type and share:", "", *head, *(line(g) for g in groups)]) + "\n"


def write_side_by_side(csv_path: Path, columns, title: str, script: str) -> None:
    """``side_by_side`` of the rows ``csv_path`` holds, written beside it as .md."""
    out = csv_path.with_suffix(".md")
    out.write_text(side_by_side(list(csv.DictReader(csv_path.open())), columns, title, script))
    print(f"wrote {out}")


def table(csv_path: Path, seed: int) -> str:
    rows = list(csv.DictReader(csv_path.open()))
    families: dict[str, dict[str, list[float]]] = {}
    groups: dict[str, dict[str, list[float]]] = {}
    members: dict[str, list[str]] = {}
    for r in rows:
        for key in (r["family"], group_of(r["dataset"], r["family"])):
            members.setdefault(key, []).append(r["dataset"])
        for name in VARIANTS:
            families.setdefault(r["family"], {}).setdefault(name, []).append(float(r[name]))
            groups.setdefault(group_of(r["dataset"], r["family"]), {}).setdefault(name, []).append(float(r[name]))
    peers = peer_runs()
    head = "| | sets | " + " | ".join(VARIANTS) + " | best peer |\n|---|---:|" + "---:|" * len(VARIANTS) + "---:|\n"
    lines = [f"# Cleaning rules side by side (SPLIT_SEED {seed}, tuning half, seed 0)", "",
             "`python bench/cleaning_variants.py` (see its docstring): the package's default score on each cleaning; "
             "mean AUROC; `best peer`: the best of deepuad's peers on the same sets (bench/results/panel.csv, seed 0).", "", "By family, and the mean of family means:", "", head.rstrip()]
    for family, by in families.items():
        lines.append(f"| {family} | {len(by['paper (default)'])} | " + " | ".join(f"{np.mean(by[n]):.3f}" for n in VARIANTS)
                     + f" | {best_peer(members[family], peers)} |")
    lines.append("| **mean of family means** | | " + " | ".join(
        f"**{np.mean([np.mean(by[n]) for by in families.values()]):.3f}**" for n in VARIANTS) + " | |")
    lines += ["", "Synthetic anomalies by type and share:", "", head.rstrip()]
    for group in sorted(g for g in groups if g not in families):
        by = groups[group]
        lines.append(f"| {group} | {len(by['paper (default)'])} | " + " | ".join(f"{np.mean(by[n]):.3f}" for n in VARIANTS)
                     + f" | {best_peer(members[group], peers)} |")
    with_signals = [r for r in rows if all(r.get(k) not in (None, "") for k in SIGNALS)]
    if len(with_signals) > 2:
        from scipy.stats import spearmanr

        gain = [float(r["trim"]) - float(r["paper (default)"]) for r in with_signals]
        lines += ["", f"Does a label-free signal say when trim wins? Rank correlation (Spearman) of each with trim's gain in "
                  f"AUROC over the paper's cleaning, over {len(with_signals)} sets (trim ahead on "
                  f"{sum(g > 0 for g in gain)}):", "", "| signal | Spearman |", "|---|---:|"]
        for signal in SIGNALS:
            values = [float(r[signal]) for r in with_signals]
            rho = f"{spearmanr(values, gain)[0]:+.2f}" if len(set(values)) > 1 else "constant"
            lines.append(f"| {signal} | {rho} |")
    return "\n".join(lines) + "\n"


def exploration_args(doc: str, script: str, cached: bool = False) -> argparse.Namespace:
    """The command line of an exploration of a split's tuning half, refused where the split's held-out
    half has run: ``cached`` for one that reads bench/parts_panel.py's cached fits (``--cache``), else
    one that fits and may be split over processes (``--part``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-seed", type=int, required=True)
    parser.add_argument("--rerun-used-split", action="store_true", help=RERUN_HELP)
    if cached:
        parser.add_argument("--cache", type=Path, default=FITS, help="bench/parts_panel.py's cached fits")
    else:
        parser.add_argument("--part", default="0/1", help="K/N: this process takes every N-th set from the K-th")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    args = parser.parse_args()
    refuse_used_split(args.split_seed, script, args.rerun_used_split)
    return args


def tuning_sets(args: argparse.Namespace, csv_path: Path) -> list:
    """The tuning half's sets of ``args.split_seed`` this process takes (``--part``), but those ``csv_path`` holds."""
    sets = panel.catalog(2000, args.data_dir, args.data_dir / "odds_adbench")
    halves = panel.split(sets, args.split_seed)
    done = {r["dataset"] for r in csv.DictReader(csv_path.open())} if csv_path.exists() else set()
    k, n = (int(v) for v in args.part.split("/"))
    mine = [s for s in sets if halves[s[0]] == "tuning"][k::n]
    return [s for s in mine if s[0] not in done]


def scored_tuning_sets(split_seed: int, data_dir: Path, half: str = "tuning"):
    """(name, family, the rows scored, their labels) of each tuning set of ``split_seed`` whose scored rows
    hold both classes: what the explorations from cached fits (part_choice, score_frontier,
    reference_trim) read; ``half="held-out"``: those of the held-out half (read after a freeze only)."""
    sets = panel.catalog(2000, data_dir, data_dir / "odds_adbench")
    halves = panel.split(sets, split_seed)
    for name, family, _, load in sets:
        if halves[name] == half:
            _, _, Xscore, y = load()
            if y.min() < y.max():
                yield name, family, Xscore, y


def append_row(csv_path: Path, fields: list[str], row: dict) -> None:
    """``row`` appended to ``csv_path``, its header first where the file is new (the explorations resume)."""
    new = not csv_path.exists()
    with csv_path.open("a", newline="") as out:
        writer = csv.DictWriter(out, fields)
        if new:
            writer.writeheader()
        writer.writerow(row)


def main() -> None:
    args = exploration_args(__doc__, "cleaning_variants")
    csv_path = panel.RESULTS / f"cleaning_variants_split{args.split_seed}.csv"
    if not args.table_only:
        import torch

        from deepuad.estimators.detector import DeepUAD
        from sklearn.metrics import roc_auc_score

        torch.set_num_threads(1)
        warnings.filterwarnings("ignore")
        for name, family, _, load in tuning_sets(args, csv_path):
            Xfit, _, Xscore, y = load()
            if y.min() == y.max():
                continue
            row = {"dataset": name, "family": family,
                   "copies": round(1 - len(np.unique(Xfit, axis=0)) / len(Xfit), 5)}
            kept = {}
            for variant, overrides in VARIANTS.items():
                detector = DeepUAD(seed=0, **overrides).fit(Xfit)
                scores = detector.decision_scores_ if Xscore is Xfit else detector.decision_function(Xscore)
                row[variant] = round(float(roc_auc_score(y, scores)), 5)
                kept[variant] = set(detector.selected_.tolist())
            paper, trim = kept["paper (default)"], kept["trim"]
            row.update({"paper kept": round(len(paper) / len(Xfit), 5), "trim kept": round(len(trim) / len(Xfit), 5),
                        "overlap": round(len(paper & trim) / len(paper | trim), 5)})
            append_row(csv_path, ["dataset", "family", *VARIANTS, *SIGNALS], row)
            print(name, row, flush=True)
    (panel.RESULTS / f"cleaning_variants_split{args.split_seed}.md").write_text(table(csv_path, args.split_seed))


if __name__ == "__main__":
    main()
