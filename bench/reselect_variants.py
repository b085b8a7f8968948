"""Re-selection variants tried against the default, on the panel's data sets (the evidence for not keeping them).

    python bench/reselect_variants.py                 # the tuning half, seeds 0 1 2 -> bench/results/reselect_variants.md
    python bench/reselect_variants.py --half held-out --out bench/results/reselect_variants_heldout.md
    python bench/reselect_variants.py --table-only    # rewrite the table from the CSV beside it

Each variant is DeepUAD with one method overridden; everything else is the default:

* default:           the default re-selection (GMM on z, p 30, converged when at most 5 % of rows changed).
* noise stop:        also converged when the selection changed no more than the seed alone moves it: a
                     second GMM, with another seed, fitted on the same z at every re-selection.
* adaptive p:        p = 100 x clip(2 x s, 0.05, 0.30), s the anomaly share estimated from the log cosine
                     errors of all rows (``scoring.estimate_contamination``), instead of a fixed 30.
* adaptive p, 1000 steps: the same, never converged before 1,000 optimiser steps (70 epochs or more on the
                     panel's sets; on full-size KDDCUP, about 240 steps an epoch, it would not bind).

A stop rule to train less on small data (the cost goal), a p rule to need no share guess: neither is a default
(docs/results.md says why). The data sets, subsamples and halves are bench/panel.py's. Writes a CSV
(every run: AUROC, AUPRC, epochs, seconds) and a Markdown table (per variant and per set). One thread.

Smoke runs (tests/test_bench_smoke.py): ``--datasets``, ``--seeds``, ``--epochs`` and ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from panel import datasets  # noqa: E402  (also puts this checkout's deepuad first on the path)

from deepuad.estimators import scoring  # noqa: E402
from deepuad.estimators.detector import DeepUAD  # noqa: E402
from deepuad.estimators.selection import n_changed  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FIELDS = ["dataset", "half", "variant", "seed", "auroc", "auprc", "epochs", "seconds"]


class NoiseStop(DeepUAD):
    """Converged also when the selection changed no more than a re-fit with another GMM seed moves it."""

    def _choose(self, codes, errors):
        selection = super()._choose(codes, errors)
        other_seed = int(np.random.default_rng([self.seed, len(self.iterations_), 1]).integers(2**31 - 1))
        self.seed_noise_ = n_changed(selection.selected, self._variance_selection(codes, errors, other_seed).selected)
        return selection

    def _record(self, selected, threshold, fallback, n_rows):
        super()._record(selected, threshold, fallback, n_rows)
        self.converged_ = self.converged_ or self.iterations_[-1].n_changed <= self.seed_noise_


class AdaptiveP(DeepUAD):
    """The re-selection's p from the anomaly share estimated on the errors; no convergence before ``min_steps``."""

    min_steps = 0

    def _choose(self, codes, errors):
        share = scoring.estimate_contamination(np.log(np.asarray(errors, dtype=np.float64) + 1e-12))
        fixed, self.p = self.p, 100 * min(0.30, max(0.05, 2 * share))
        try:  # the default rule (the same GMM and seed) with that p
            return super()._choose(codes, errors)
        finally:
            self.p = fixed

    def _train_steps(self, X, order, batch_size):
        self.steps_ = getattr(self, "steps_", 0) + math.ceil(len(order) / batch_size)
        return super()._train_steps(X, order, batch_size)

    def _record(self, selected, threshold, fallback, n_rows):
        super()._record(selected, threshold, fallback, n_rows)
        self.converged_ = self.converged_ and getattr(self, "steps_", 0) >= self.min_steps


class AdaptivePMinSteps(AdaptiveP):
    min_steps = 1000


VARIANTS = {"default": DeepUAD, "noise stop": NoiseStop, "adaptive p": AdaptiveP, "adaptive p, 1000 steps": AdaptivePMinSteps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=["tuning", "held-out"], default="tuning")
    parser.add_argument("--datasets", nargs="+", default=None, help="only these (bench/panel.py's names)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget (smoke runs) [default: DeepUAD's]")
    parser.add_argument("--out", type=Path, default=RESULTS / "reselect_variants.md", help="the table; the CSV goes beside it")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table from the CSV beside it")
    args = parser.parse_args()
    if args.table_only:
        args.out.write_text(table(list(csv.DictReader(args.out.with_suffix(".csv").open())), args))
        return
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    torch.set_num_threads(1)
    sets = [s for s in datasets(args.max_rows) if (s[0] in args.datasets if args.datasets else s[1] == args.half)]
    rows = []
    for name, half, load in sets:
        X, _, Xscore, yscore = load()  # KDDCUP: fit on the train half, score the test half (bench/panel.py)
        if yscore.min() == yscore.max():  # as bench/panel.py: smtp's subsample holds no anomaly
            print(f"{name}: skipped, the {len(yscore)} rows scored hold one class only (AUROC undefined)", flush=True)
            continue
        same_rows = Xscore is X or np.array_equal(Xscore, X)
        for variant, detector in VARIANTS.items():
            for seed in args.seeds:
                start = time.perf_counter()
                fitted = detector(seed=seed, **({"epochs": args.epochs} if args.epochs else {})).fit(X)
                scores = fitted.decision_scores_ if same_rows else fitted.decision_function(Xscore)
                rows.append({"dataset": name, "half": half, "variant": variant, "seed": seed,
                             "auroc": round(float(roc_auc_score(yscore, scores)), 5),
                             "auprc": round(float(average_precision_score(yscore, scores)), 5), "epochs": fitted.epoch_,
                             "seconds": round(time.perf_counter() - start, 2)})
                print(f"{name:22s} {variant:24s} seed {seed}  AUROC {rows[-1]['auroc']:.3f}  {fitted.epoch_:3d} epochs",
                      flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.with_suffix(".csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    args.out.write_text(table(rows, args))


def table(rows: list[dict], args) -> str:
    # a set whose scored rows hold one class has no AUROC (NaN in a CSV written before such sets were skipped)
    undefined = list(dict.fromkeys(r["dataset"] for r in rows if math.isnan(float(r["auroc"]))))
    rows = [r for r in rows if r["dataset"] not in undefined]
    names = list(dict.fromkeys(r["dataset"] for r in rows))

    def cell(name, variant, field):
        return np.mean([float(r[field]) for r in rows if r["dataset"] == name and r["variant"] == variant])

    lines = ["# Re-selection variants against the default", "",
             f"Regenerate: `{' '.join(['python bench/reselect_variants.py', *(a for a in sys.argv[1:] if a != '--table-only')])}` "
             "(see its docstring). "
             f"{len(names)} data sets ({'named' if args.datasets else f'the {args.half} half'}), at most "
             f"{args.max_rows} rows, seeds "
             f"{' '.join(map(str, args.seeds))}; AUROC and epochs are means over seeds, seconds the sum over sets "
             "and seeds (one thread)." + (f" Left out, their scored rows holding one class: {', '.join(undefined)}." if undefined else ""),
             "",
             "| variant | mean AUROC | change | median epochs | seconds |", "|---|---|---|---|---|"]
    base = np.mean([cell(n, "default", "auroc") for n in names])
    for variant in VARIANTS:
        auroc = np.mean([cell(n, variant, "auroc") for n in names])
        epochs = np.median([float(r["epochs"]) for r in rows if r["variant"] == variant])
        seconds = sum(float(r["seconds"]) for r in rows if r["variant"] == variant)
        lines.append(f"| {variant} | {auroc:.4f} | {auroc - base:+.4f} | {epochs:.0f} | {seconds:.1f} |")
    lines += ["", "## Per data set: AUROC (epochs)", "", "| data set | " + " | ".join(VARIANTS) + " |",
              "|---|" + "---|" * len(VARIANTS)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{cell(name, v, 'auroc'):.3f} ({cell(name, v, 'epochs'):.0f})"
                                                 for v in VARIANTS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
