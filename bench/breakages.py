"""Reapply the breakages of issue 16 one at a time and record which tests catch each.

Each breakage is a one-line patch of deepuad's source that reduces the method to something less
(a plain autoencoder, no re-selection, no stopping rule, stale stages). For each, this script
copies deepuad/, tests/ and pyproject.toml into a temporary folder, applies the patch there
(the working tree is never modified), runs the targeted tests against that copy and records the
tests that fail. A first run without any patch must pass, or the table would mean nothing.

    python bench/breakages.py                    # markdown table on stdout
    python bench/breakages.py --out table.md     # and written to a file
    python bench/breakages.py --only stop_never  # one breakage

A patch whose text is no longer in the source is reported as "does not apply" (the source
changed: update the patch), never silently skipped. Run from any folder; ~1 min per breakage
on one core.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the tests of the method and of the stages it runs in (not the whole suite: seconds, not minutes)
TESTS = [
    "tests/test_estimators_detector_mechanism.py",
    "tests/test_estimators_rules.py",
    "tests/test_estimators_selection.py",
    "tests/test_estimators_detector.py",
    "tests/test_cli_pipeline.py::test_resume_after_stopping_gives_the_same_result",
    "tests/test_cli_pipeline.py::test_run_chains_stages_and_skips_what_is_current",
    "tests/test_cli_pipeline.py::test_pipeline_end_to_end_writes_every_stage_and_keeps_anomalies_out_of_training",
]

# name, issue's wording, file, exact source text, its broken replacement
BREAKAGES = [
    ("train_on_initial", "training always on the initial set (re-selection never changes what the model trains on)",
     "deepuad/estimators/detector.py", "selected = torch.from_numpy(self.selected_)",
     "selected = torch.from_numpy(self.iterations_[0].selected)"),
    ("train_ignores_clusters", "`train` ignoring the clusters file and training on all rows",
     "deepuad/stages/train.py", 'selected = art.read_array(f, "selected").astype(np.int64)',
     "selected = np.arange(len(X))"),
    ("stop_never", "the stopping rule never converging",
     "deepuad/estimators/detector.py", "self.converged_ = changed <= self.tol * n_rows", "self.converged_ = False"),
    ("stop_first", "the stopping rule always converging after the first re-selection",
     "deepuad/estimators/detector.py", "self.converged_ = changed <= self.tol * n_rows", "self.converged_ = True"),
    ("z_without_error", "re-selection clustering the codes without the error column",
     "deepuad/estimators/rules.py", "z = np.concatenate([codes, errors[:, None]], axis=1).astype(np.float64)",
     "z = codes.astype(np.float64)"),
    ("reselect_p0_variance", "re-selection using p0 instead of p (GMM rule)",
     "deepuad/estimators/rules.py", "chosen = select(z, labels, detector.p, over=", "chosen = select(z, labels, detector.p0, over="),
    ("reselect_p0_error", "re-selection using p0 instead of p (error rule)",
     "deepuad/estimators/rules.py", "threshold = float(np.quantile(errors, 1 - detector.p / 100))",
     "threshold = float(np.quantile(errors, 1 - detector.p0 / 100))"),
    ("cluster_keeps_p0", "`cluster` keeping p0 % of the rows instead of (100 - p0) %",
     "deepuad/stages/cluster.py", "selection = initial_selection(X, p0, init_method,", "selection = initial_selection(X, 100 - p0, init_method,"),
    ("run_ignores_inputs", "`run` skipping a stage although its input changed",
     "deepuad/stages/_common.py", "return complete if same_params and same_inputs else None", "return complete if same_params else None"),
    ("resume_ignores_inputs", "`--resume` accepting changed inputs",
     "deepuad/stages/train.py", 'if recorded.get(role, {}).get("fingerprint") != inputs[role]["fingerprint"] and not force:',
     "if False:"),
    ("clusters_rule_strict", "the `clusters` percentile rule with `<=` turned into `<`",
     "deepuad/estimators/selection.py", "accepted = present & (variances <= threshold)", "accepted = present & (variances < threshold)"),
]


def copy_tree(target: Path) -> None:
    for name in ("deepuad", "tests"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", target / "pyproject.toml")


def run_tests(folder: Path) -> tuple[int, list[str], float, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(folder)}
    # the copy must be the deepuad imported, not the editable install of the working tree
    where = subprocess.run([sys.executable, "-c", "import deepuad; print(deepuad.__file__)"], cwd=folder, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(folder.resolve()), f"imported {where}, not the patched copy"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *TESTS], cwd=folder, env=env,
                          capture_output=True, text=True)
    failed = sorted({m.group(1) for m in re.finditer(r"^FAILED (\S+)", done.stdout, re.M)})
    return done.returncode, failed, time.perf_counter() - start, done.stdout[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the breakages to apply (default: all)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    chosen = [b for b in BREAKAGES if not args.only or b[0] in args.only]

    rows = ["| breakage | patch (file: before -> after) | failing tests (caught by) |", "| --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="deepuad_breakages_") as base:
        clean = Path(base) / "clean"
        copy_tree(clean)
        code, failed, seconds, tail = run_tests(clean)
        print(f"unpatched: exit {code}, {seconds:.0f} s", file=sys.stderr)
        if code != 0:
            sys.exit(f"the targeted tests fail without any breakage ({', '.join(failed)}):\n{tail}")
        for name, wording, file, before, after in chosen:
            folder = Path(base) / name
            copy_tree(folder)
            source = (folder / file).read_text()
            if source.count(before) != 1:
                caught = f"**does not apply** ({source.count(before)} matches: the source changed, update the patch)"
            else:
                (folder / file).write_text(source.replace(before, after))
                code, failed, seconds, tail = run_tests(folder)
                caught = ", ".join(f"`{t}`" for t in failed) if failed else "**NOT CAUGHT** (all targeted tests pass)"
                print(f"{name}: exit {code}, {len(failed)} failing, {seconds:.0f} s", file=sys.stderr)
            rows.append(f"| {wording} | `{file}`: `{before}` -> `{after}` | {caught} |")
            shutil.rmtree(folder)
    table = "\n".join(rows) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
