"""How sure the panel's family verdicts are: deepuad's mean AUROC less each peer's, per family (and per synthetic
type and share), with a 95 % paired bootstrap interval over the family's sets (2,000 draws, seed 0). A gap whose
interval holds 0 is one that the sets of that half cannot tell from the luck of which sets it holds.

    python bench/family_gaps.py --csv bench/results/panel_split48.csv   # the seventh round's held-out half -> family_gaps.md
    python bench/family_gaps.py --csv bench/results/unseen_bases.csv --half all --out family_gaps_unseen.md

Seed 0 runs only; a set counts where deepuad and the peer both ran on it. A half with no deepuad run (panel.csv
between a round's choice and its held-out run) is refused.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import panel  # noqa: E402
import synthetic  # noqa: E402


def interval(groups: list[np.ndarray], draws: int = 2000) -> tuple[float, float]:
    """The 95 % paired bootstrap interval of the mean over ``groups`` of each group's mean difference: each
    group's sets resampled within the group (one group: a plain bootstrap over its sets), seed 0."""
    rng = np.random.default_rng(0)
    means = np.mean([d[rng.integers(0, len(d), size=(draws, len(d)))].mean(axis=1) for d in groups], axis=0)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def from_default(rows: list[dict], column: str, base: str = "default") -> tuple[float, float, float]:
    """(``column`` less ``base`` in the mean of family means over ``rows``, one per set, and its 95 % interval)."""
    families: dict[str, list[float]] = {}
    for r in rows:
        families.setdefault(r["family"], []).append(float(r[column]) - float(r[base]))
    differences = [np.asarray(d) for d in families.values()]
    return (float(np.mean([d.mean() for d in differences])), *interval(differences))


def against_default(rows: list[dict], columns, of: str = "") -> list[str]:
    """An exploration's closing table: each of ``columns`` but the first (the default) against it
    (``from_default``), and the planted spikes it misses (its "<column> missed" entries; ``of``: how many
    there are, said after "misses")."""
    lines = ["", "Each column against the default, mean of family means (paired bootstrap over the sets, 95 %), and the planted",
             f"spikes it misses{of}:", "", "| | difference | 95 % interval | spikes missed |", "|---|---:|---:|---:|"]
    for column in list(columns)[1:]:
        point, low, high = from_default(rows, column)
        missed = sum(int(r[f"{column} missed"]) for r in rows if r[f"{column} missed"] != "")
        lines.append(f"| {column} | {point:+.4f} | {low:+.4f} to {high:+.4f} | {missed} |")
    return lines


def gaps(rows: list[dict], half: str) -> str:
    chosen = [r for r in rows if r["seed"] == "0" and (half == "all" or r["half"] == half)]
    auroc = {(r["dataset"], r["method"]): float(r["auroc"]) for r in chosen}
    family = {r["dataset"]: r["family"] for r in chosen}
    peers = [m for m in panel.PEERS if any(k[1] == m for k in auroc)]
    groups: dict[str, list[str]] = {}
    for name in sorted({d for d, m in auroc if m == "deepuad"}):
        groups.setdefault(family[name], []).append(name)
        if family[name] == "synthetic":
            groups.setdefault(name.split("+")[1], []).append(name)
    lines = [f"# deepuad less each peer, per family ({half} half, seed 0)" if half != "all" else
             "# deepuad less each peer, per family (every set, seed 0)", "",
             "`python bench/family_gaps.py` (see its docstring): mean AUROC difference [95 % paired bootstrap interval]; "
             "**bold** where the interval lies below 0.", "",
             "| | sets | " + " | ".join(peers) + " |", "|---|---:|" + "---:|" * len(peers)]
    if not groups:
        raise SystemExit(f"no set of the {half} half has a deepuad run at seed 0: nothing to compare")
    order = [f for f in panel.FAMILIES if f in groups] + sorted((g for g in groups if g not in panel.FAMILIES),
                                                                 key=synthetic.type_and_share)
    for key in order:
        members, cells = groups[key], []
        for peer in peers:
            both = [d for d in members if (d, peer) in auroc]
            if not both:
                cells.append("")
                continue
            differences = np.array([auroc[d, "deepuad"] - auroc[d, peer] for d in both])
            low, high = interval([differences])
            text = f"{differences.mean():+.3f} [{low:+.3f}, {high:+.3f}]"
            cells.append(f"**{text}**" if high < 0 else text)
        lines.append(f"| {key} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=panel.RESULTS / "panel.csv")
    parser.add_argument("--half", choices=("tuning", "held-out", "all"), default="held-out")
    parser.add_argument("--out", default="family_gaps.md", help="file name in --csv's folder")
    args = parser.parse_args()
    out = args.csv.parent / args.out
    out.write_text(gaps(list(csv.DictReader(args.csv.open())), args.half))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
