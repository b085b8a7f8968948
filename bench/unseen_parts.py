"""Why the default misses what it misses on the bases no round has used (bench/unseen_bases.py): each part
of the default alone and the default less each part, on those sets, from one cached fit per set
(bench/parts_panel.py's ``fit_and_cache``; no row of the panel is read). An exploration for a next round:
these sets are tuning material from now on, and the bases that are neither the panel's nor these
(unseen_bases.reserved) stay unread for that round's held-out half.

    python bench/unseen_parts.py --part 0/2 & python bench/unseen_parts.py --part 1/2   # fits, caches, rows
    python bench/unseen_parts.py --table-only        # -> bench/results/unseen_parts.csv, .md
    python bench/unseen_parts.py --reserved ...      # the same on the reserved bases -> reserved_parts.csv, .md

Columns (the default's reference trim and wide-data rule throughout): ``default``; ``knn``, ``l2``, ``range``,
``tails`` alone; ``no range``, ``no tails``, ``no knn``: the default less that part; ``+ forest``: the default with
an isolation forest grown on the kept rows beside its parts; ``kept reference``: every part fitted on the kept rows
(the paper's cleaning trusted for all of them). The spikes columns give the
planted spikes at or below the normal rows' 99th percentile, and ``normal p99``, the normal rows' 99th
percentile of the range part (ranges beyond the kept rows, less its level) on each spike set.
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import parts_panel  # noqa: E402
import synthetic  # noqa: E402
from cleaning_variants import append_row  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from unseen_bases import new_bases, reserved  # noqa: E402

from deepuad.estimators import parts as score_parts  # noqa: E402
from deepuad.estimators.params import DEFAULTS  # noqa: E402

CACHES = {"unseen": Path("runs/parts_cache_unseen"), "reserved": Path("runs/parts_cache_reserved")}
DEFAULT = score_parts.parts_of(DEFAULTS["score"])
TRIM = DEFAULTS["reference_trim"]
COLUMNS = {"default": DEFAULT, **{f"{p} alone": (p,) for p in DEFAULT},
           **{f"no {p}": tuple(q for q in DEFAULT if q != p) for p in ("range", "tails", "knn")},
           "+ forest": (*DEFAULT, "iforest"), "kept reference": DEFAULT}
ON_KEPT_ROWS = ("kept reference",)  # columns whose parts are all fitted on the kept rows


def measures(cache: parts_panel.Values, family: str, y: np.ndarray) -> dict:
    out = {}
    wide = parts_panel.wide_parts(cache, parts_panel.package_default()[3])
    for column, parts in COLUMNS.items():
        parts = tuple(p for p in (wide or parts) if p in parts) if wide else parts
        if not parts:  # a per-column part alone on wide data, where the default leaves it out
            out[column] = ""
            continue
        view = "kept" if column in ON_KEPT_ROWS else cache.trimmed(TRIM)
        s = parts_panel.score_of(cache, view, parts, {}, parts_panel.kept_parts(parts))
        out[column] = round(float(roc_auc_score(y, s)), 5)
        if family == "spikes":
            out[f"{column} missed"] = synthetic.spikes_missed(s, y)
    if family == "spikes":
        out["normal p99"] = round(float(np.percentile(cache["kept/range"][y == 0], 99)), 3)
    return out


def table(rows: list[dict], peers: dict, reserved: bool = False) -> str:
    methods = list(COLUMNS)
    lines = [f"# The default's parts on {'the reserved bases' if reserved else 'bases no round has used'} (seed 0)", "",
             f"`python bench/unseen_parts.py{' --reserved' if reserved else ''}` (see its docstring). Mean AUROC; the best "
             f"peer from `{'reserved' if reserved else 'unseen'}_bases.csv`.", "",
             "| | sets | " + " | ".join(methods) + " | best peer |", "|---|---:|" + "---:|" * (len(methods) + 1)]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        for key in {r["family"], r["dataset"].split("+")[1] if r["family"] == "synthetic" else r["family"]}:
            groups.setdefault(key, []).append(r)
    groups.update({kind: [r for r in rows if f"+{kind}_" in r["dataset"]] for kind in synthetic.KINDS})  # every share
    order = ["synthetic", "spikes", *synthetic.KINDS]
    order += sorted((g for g in groups if g not in order), key=synthetic.type_and_share)
    for key in order:
        members = groups[key]
        cells = []
        for m in methods:
            values = [float(r[m]) for r in members if r[m] != ""]
            cells.append(f"{np.mean(values):.3f}" if len(values) == len(members) else "")
        best = max(((np.mean([peers[p][r["dataset"]] for r in members]), p) for p in peers), default=None)
        lines.append(f"| {key} | {len(members)} | " + " | ".join(cells) + (f" | {best[0]:.3f} ({best[1]}) |" if best else " | |"))
    spikes = [r for r in rows if r["family"] == "spikes"]
    lines += ["", "Planted spikes at or below the normal rows' 99th percentile, per set (20 each), and that percentile of the "
              "range part:", "", "| set | " + " | ".join(methods) + " | range, normal p99 |", "|---|" + "---:|" * (len(methods) + 1)]
    for r in spikes:
        lines.append(f"| {r['dataset']} | " + " | ".join(r.get(f"{m} missed", "") for m in methods) + f" | {r['normal p99']} |")
    lines.append(f"| **all {len(spikes)} sets** | " + " | ".join(
        f"**{sum(int(r[f'{m} missed']) for r in spikes)}**" if all(r.get(f"{m} missed", "") != "" for r in spikes) else ""
        for m in methods) + " | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="0/1", help="K/N: this process takes every N-th set from the K-th")
    parser.add_argument("--cache", type=Path, default=None, help="the cached fits [default: runs/parts_cache_unseen, "
                        "or runs/parts_cache_reserved with --reserved]")
    parser.add_argument("--data-dir", type=Path, default=panel.DATA)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--results", type=Path, default=panel.RESULTS, help="where unseen_bases.csv lies and the table goes")
    parser.add_argument("--epochs", type=int, default=None, help="the network's epoch budget (smoke runs)")
    parser.add_argument("--reserved", action="store_true", help="the reserved bases (unseen_bases.reserved), not the eight")
    args = parser.parse_args()
    name = "reserved" if args.reserved else "unseen"
    bases = (reserved if args.reserved else new_bases)(args.data_dir / "odds_adbench")
    csv_path = args.results / f"{name}_parts.csv"
    fields = ["dataset", "family", *COLUMNS, *(f"{c} missed" for c in COLUMNS), "normal p99"]
    if not args.table_only:
        import torch

        torch.set_num_threads(1)
        warnings.filterwarnings("ignore")
        parts_panel.CACHE = args.cache or CACHES[name]
        k, n = (int(v) for v in args.part.split("/"))
        sets = [s for s in panel.catalog(2000, args.data_dir, args.data_dir / "odds_adbench", bases)
                if s[1] in ("synthetic", "spikes")][k::n]
        part_csv = csv_path.with_name(f"{name}_parts.{k}.csv")
        done = {r["dataset"] for r in csv.DictReader(part_csv.open())} if part_csv.exists() else set()
        for name, family, _, load in sets:
            if name in done:
                continue
            Xfit, _, Xscore, y = load()
            cache = parts_panel.Values(np.load(parts_panel.fit_and_cache(name, Xfit, Xscore, y, 0, args.epochs)), Xscore, 0)
            row = {"dataset": name, "family": family, **measures(cache, family, y)}
            append_row(part_csv, fields, row)
            print(name, " ".join(f"{row[c]}" for c in COLUMNS), flush=True)
        return
    rows = [r for p in sorted(csv_path.parent.glob(f"{name}_parts.*.csv")) for r in csv.DictReader(p.open())]
    order = {s[0]: i for i, s in enumerate(panel.catalog(2000, args.data_dir, args.data_dir / "odds_adbench", bases))}
    rows.sort(key=lambda r: order[r["dataset"]])
    with csv_path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fields)
        writer.writeheader()
        writer.writerows(rows)
    for p in csv_path.parent.glob(f"{name}_parts.*.csv"):
        p.unlink()
    peers: dict = {}
    for r in csv.DictReader((args.results / f"{name}_bases.csv").open()):
        if r["method"] in panel.PEERS:
            peers.setdefault(r["method"], {})[r["dataset"]] = float(r["auroc"])
    csv_path.with_suffix(".md").write_text(table(rows, peers, args.reserved))
    print(f"wrote {csv_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
