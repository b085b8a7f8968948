"""Per-function mutation score from mutmut's results, split into the core algorithm and the rest.

    mutmut run --max-children 1          # configured in pyproject.toml [tool.mutmut]
    python bench/mutation_table.py       # markdown tables on stdout (reads `mutmut results --all true`)
    python bench/mutation_table.py --survivors   # also every surviving core mutant's diff
    python bench/mutation_table.py --scope deepuad.estimators.cleaning --scope deepuad.estimators.scoring:robust_scale
                                         # only these modules or functions (a run restricted by mutant names)

Score = (killed + timeout) / (mutants checked) per function: a timeout is an endless loop the
tests stopped, caught as mutmut counts it; "no tests" (no selected test runs the function) counts
against the score like a survivor. Functions outside the core may be left unchecked (a run
restricted to the core by mutant names); they are then shown with the count not run.

The core is what issue 16 names: selection, the detector's training and re-selection loop and its
rules (rules.py), the initial clustering (the GMM path every default run takes) and the score (the
autoencoder, its errors, the parts of parts.py and the fitted score of scorer.py with the checks
on a stored one, and scoring.py: the forest, the k-NN distances, the robust scale, the contamination
estimate); and the detection-quality issue's trim cleaning rule (cleaning.py). Everything else mutmut mutated in
those files is listed apart, with the reason it is outside the targeted, seconds-per-mutant test
selection.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict

CORE = {
    "deepuad.estimators.selection": {"cluster_variances", "select_low_variance", "select", "n_changed", "initial_selection"},
    "deepuad.estimators.rules": {"LowErrors.choose", "LowVarianceClusters.choose", "Trim.choose", "gmm_of_z",
                                 "LowVarianceStart.choose", "TrimStart.choose"},
    "deepuad.estimators.detector": {"DeepUAD.__init__", "DeepUAD.fit", "DeepUAD._start", "DeepUAD._train",
                         "DeepUAD._train_one_epoch", "DeepUAD._reselect", "DeepUAD._record", "DeepUAD._scorer",
                         "DeepUAD._scores", "DeepUAD.score_parts", "DeepUAD.decision_function", "Iteration.n_selected",
                         "_check_rows", "auto_layers", "auto_batch_size"},
    "deepuad.estimators.clustering": {"_subsample", "_predict_in_chunks", "fit_gmm", "gmm_labels", "cluster_labels"},
    "deepuad.estimators.autoencoder": {"_mlp", "Autoencoder.__init__", "Autoencoder.forward", "cosine_error", "encode_and_score",
                                       "Steps.run"},
    "deepuad.estimators.parts": {"combine", "reference_rows", "parts_of", "make", "needs_network", "scores",
                                 "SquaredError.values", "CosineError.values", "NearestRows.__init__", "NearestRows.fit",
                                 "NearestRows.values", "NearestRows.state", "NearestRows.restore", "KeptForest.fit",
                                 "KeptForest.values", "KeptForest.state", "KeptForest.restore",
                                 "OutsideRange.fit", "OutsideRange._fit_range", "OutsideRange.values", "OutsideRange.state",
                                 "OutsideRange.restore"},
    "deepuad.estimators.scorer": {"Scorer.__init__", "Scorer.fit", "Scorer.values", "Scorer.combined", "Scorer.scores",
                                  "Scorer.score_parts", "Scorer.decision_function", "Scorer._checked", "Scorer.state",
                                  "Scorer.restore"},
    "deepuad.estimators.cleaning": {"robust_z", "initial_outlyingness", "trim"},
    "deepuad.estimators.scoring": {"knn_distances", "_average_path_length", "fit_forest", "forest_scores", "for_combining",
                        "robust_scale", "estimate_contamination"},
}
OUTSIDE_REASONS = {
    "DeepUAD.check_params": "parameter validation (the CLI's error contract; tests/test_estimators_detector.py, test_cli_pipeline.py)",
    "place": "CUDA only (data placement on a GPU); cannot run on this CPU machine",
    "Steps.__init__": "precision (bf16/fp16 autocast, GradScaler) and torch.compile switches",
    "DeepUAD._training_rows": "torchrun data-parallel training (tests/test_estimators_distributed.py, multi-process)",
    "DeepUAD._encode": "torchrun data-parallel training (its one-process path: the re-selection tests)",
    "take_rows": "HDF5 row reads for torchrun ranks",
    "DeepUAD._all_scores": "torchrun data-parallel training (its one-process path: every fit)",
    "DeepUAD._contamination_used": "PyOD's predict_confidence (tests/test_estimators_base.py)",
    "check_forest": "checks of a stored forest (tests/test_artifacts_reliability.py corrupted artifacts, test_cli_hostile.py)",
    "DeepUAD.get_state": "checkpoint state (tests/test_cli_pipeline.py resume and kill tests, minutes, not seconds)",
    "DeepUAD.set_state": "checkpoint state (tests/test_cli_pipeline.py resume and kill tests)",
    "network_state": "checkpoint state (tests/test_cli_pipeline.py resume and kill tests)",
    "load_network_state": "checkpoint state (tests/test_cli_pipeline.py resume and kill tests)",
    "kmeans_labels": "alternative initial clustering (ablation; tests/test_cli_pipeline.py every-method test)",
    "hdbscan_labels": "alternative initial clustering (ablation; tests/test_cli_pipeline.py every-method test)",
    "distribution_labels": "alternative initial clustering (images/video; tests/test_estimators_distribution.py)",
}


def function_of(mutant: str) -> tuple[str, str]:
    """'deepuad.estimators.detector.xǁDeepUADǁ_reselect__mutmut_3' -> ('deepuad.estimators.detector', 'DeepUAD._reselect')."""
    module, _, name = mutant.rpartition(".")
    name = re.sub(r"__mutmut_\d+$", "", name)
    if name.startswith("xǁ"):
        cls, method = name[2:].split("ǁ", 1)
        return module, f"{cls}.{method}"
    return module, name[2:] if name.startswith("x_") else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors", action="store_true", help="print the diff of every surviving core mutant")
    parser.add_argument("--scope", action="append", metavar="MODULE[:FUNCTION,...]",
                        help="tabulate only this module (or these of its functions), all of it as the core: for a run "
                             "restricted by mutant names (`mutmut run 'deepuad.estimators.parts*' ...`); repeatable")
    args = parser.parse_args()
    core = CORE
    if args.scope:
        scope = {module: set(functions.split(",")) if functions else None
                 for module, _, functions in (s.partition(":") for s in args.scope)}
        core = defaultdict(set)
    listing = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    survivors: list[str] = []
    for line in listing.splitlines():
        if ":" not in line:
            continue
        mutant, status = (part.strip() for part in line.rsplit(":", 1))
        key = function_of(mutant)
        if args.scope:
            if key[0] not in scope or (scope[key[0]] is not None and key[1] not in scope[key[0]]):
                continue
            core[key[0]].add(key[1])
        counts[key][status] += 1
        if status not in ("killed", "timeout") and key[1] in core.get(key[0], ()):
            survivors.append(f"{mutant}: {status}")
    unchecked_core = [key for key, c in counts.items() if c.get("not checked") and key[1] in core.get(key[0], ())]
    if unchecked_core:
        sys.exit(f"core mutants not checked yet ({', '.join(f for _, f in unchecked_core)}): finish `mutmut run` first")

    def score(c) -> tuple[int, int]:
        # a timeout is a mutant the tests stopped (an endless loop): caught, as mutmut counts it
        return c.get("killed", 0) + c.get("timeout", 0), sum(c.values()) - c.get("not checked", 0)

    print("### Core algorithm, per function\n")
    print("| module | function | mutants | caught | survived | no tests | score |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    per_module: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (module, function), c in sorted(counts.items()):
        if function not in core.get(module, ()):
            continue
        killed, total = score(c)
        per_module[module][0] += killed
        per_module[module][1] += total
        print(f"| {module} | {function} | {total} | {killed} | {c.get('survived', 0)} | {c.get('no tests', 0)} | "
              f"{100 * killed / total:.0f} % |")
    print("\n### Core algorithm, per module\n")
    print("| module | mutants | caught | score |")
    print("| --- | ---: | ---: | ---: |")
    all_killed = all_total = 0
    for module, (killed, total) in sorted(per_module.items()):
        all_killed, all_total = all_killed + killed, all_total + total
        print(f"| {module} | {total} | {killed} | {100 * killed / total:.1f} % |")
    print(f"| **core, all modules** | {all_total} | {all_killed} | **{100 * all_killed / all_total:.1f} %** |")

    print("\n### Outside the core (mutated, not in the targeted selection's scope)\n")
    print("| module | function | mutants | caught | survived | no tests | not run | why outside |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    whole = defaultdict(lambda: [0, 0])
    for (module, function), c in sorted(counts.items()):
        killed, total = score(c)
        whole[module][0] += killed
        whole[module][1] += total
        if function in core.get(module, ()):
            continue
        print(f"| {module} | {function} | {total} | {killed} | {c.get('survived', 0)} | {c.get('no tests', 0)} | "
              f"{c.get('not checked', 0)} | {OUTSIDE_REASONS.get(function, '')} |")
    print("\n### Whole modules (core and outside together)\n")
    print("| module | mutants | caught | score |")
    print("| --- | ---: | ---: | ---: |")
    for module, (killed, total) in sorted(whole.items()):
        print(f"| {module} | {total} | {killed} | {100 * killed / total:.1f} % |")

    if args.survivors:
        print("\n### Surviving core mutants\n")
        for survivor in survivors:
            name = survivor.split(":")[0]
            diff = subprocess.run(["mutmut", "show", name], capture_output=True, text=True).stdout
            changed = [l for l in diff.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
            print(f"- `{survivor}`\n  ```diff\n  " + "\n  ".join(changed) + "\n  ```")


if __name__ == "__main__":
    main()
