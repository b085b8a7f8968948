"""The protocol's one choice: which configuration of bench/candidates.py becomes deepuad's default,
from the tuning half of the panel and nothing else.

    python bench/choose_defaults.py                      # reads bench/results/panel.csv
    python bench/choose_defaults.py --json               # {"chosen", "overrides", "ranking"}

The protocol:
1. candidates are added to bench/candidates.py and run on the tuning half only
   (`python bench/panel.py --half tuning --methods deepuad deepuad:NAME ...`);
2. this script chooses: it drops every row whose half is not "tuning" before it reads anything
   else, then ranks the candidates (`deepuad`, which is the "default" entry, and every
   `deepuad:NAME`; `deepuad-paper` is the "paper" entry) by the mean of family means of AUROC
   over the tuning sets that every candidate finished (a set's AUROC is the mean over seeds),
   after a gate: a candidate that misses a planted spike on a tuning set of the spikes family
   (spike_recall below 1 in any run; issue 29 asks for every spike above the 99th percentile of
   the normal rows' scores) ranks after every candidate that misses none, and so does a candidate
   shown to fail one of issue 29's must-holds where the panel does not look (candidates.FAILS, each
   with what shows it);
   ties, equal to three decimals, go to the candidate with fewer overrides, then by name;
3. the chosen overrides become the package's defaults, frozen in one commit;
4. the held-out half then runs once (`python bench/panel.py --half held-out`), and its result
   stands. Any later change to the defaults needs a new SPLIT_SEED in bench/panel.py (stated in
   that commit) and this protocol run again from step 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from candidates import CANDIDATES, FAILS  # noqa: E402

ALIASES = {"deepuad": "default", "deepuad-paper": "paper"}


def candidate_of(method: str) -> str | None:
    """The bench/candidates.py name a panel method runs, None for a peer."""
    if method.startswith("deepuad:"):
        return method.split(":", 1)[1]
    return ALIASES.get(method)


def rank(rows: list[dict], candidates: dict = CANDIDATES, fails: dict = FAILS) -> list[dict]:
    """The candidates best first: [{"name", "score", "families", "sets", "spikes_missed", "fails"}], from
    the tuning rows of ``rows`` (panel.csv rows) only; score = mean over families of the mean AUROC of
    the family's sets; spikes_missed = the runs whose spike_recall is below 1; fails = the candidate is
    in ``fails`` (those that miss a spike or fail rank after those that do neither)."""
    tuning = [r for r in rows if r["half"] == "tuning"]  # before anything else reads a row
    runs: dict = {}
    family = {}
    missed: dict = {}
    for r in tuning:
        name = candidate_of(r["method"])
        if name in candidates:
            runs.setdefault((name, r["dataset"]), []).append(float(r["auroc"]))
            family[r["dataset"]] = r["family"]
            if r.get("spike_recall") not in (None, "") and float(r["spike_recall"]) < 1:
                missed.setdefault(name, set()).add((r["dataset"], r["seed"]))
    names = sorted({name for name, _ in runs})
    common = sorted({d for _, d in runs if all((n, d) in runs for n in names)})
    ranking = []
    for name in names:
        by_family: dict = {}
        for dataset in common:
            by_family.setdefault(family[dataset], []).append(np.mean(runs[(name, dataset)]))
        means = {f: float(np.mean(v)) for f, v in by_family.items()}
        ranking.append({"name": name, "score": float(np.mean(list(means.values()))) if means else float("nan"),
                        "families": means, "sets": len(common),
                        "spikes_missed": sum(d in common for d, _ in missed.get(name, ())), "fails": name in fails})
    return sorted(ranking, key=lambda c: (c["spikes_missed"] > 0 or c["fails"], -round(c["score"], 3),
                                          len(candidates[c["name"]]), c["name"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="?", type=Path, default=Path(__file__).parent / "results" / "panel.csv")
    parser.add_argument("--json", action="store_true", help="print the choice as JSON")
    args = parser.parse_args()
    ranking = rank(list(csv.DictReader(args.csv.open())))
    if not ranking or not ranking[0]["sets"]:
        sys.exit("choose_defaults: no tuning set holds a run of every candidate")
    chosen = ranking[0]["name"]
    if args.json:
        print(json.dumps({"chosen": chosen, "overrides": CANDIDATES[chosen], "ranking": ranking}, indent=2, sort_keys=True))
        return
    print(f"{'candidate':28s} {'mean of family means':>20s} {'spikes missed':>13s} {'fails':>5s}  families")
    for c in ranking:
        print(f"{c['name']:28s} {c['score']:20.4f} {c['spikes_missed']:13d} {'yes' if c['fails'] else '':>5s}  "
              + ", ".join(f"{f} {v:.3f}" for f, v in c["families"].items()))
    for name, why in FAILS.items():
        print(f"\nfails: {name}: {why}")
    print(f"\nchosen on {ranking[0]['sets']} tuning sets: {chosen} {json.dumps(CANDIDATES[chosen], sort_keys=True)}")


if __name__ == "__main__":
    main()
