"""No change of behaviour: a fixed small run of every stage gives exactly the artifacts it gave
before the redesign of issue 13 (tests/golden/reference.json, first written by that code and
regenerated since only for intended changes, each named in its commit; see tests/golden/golden_run.py
for the run and for how to regenerate it).

Every dataset (dtype, shape, SHA-256 of its bytes) and every attribute of every artifact is
compared, and every command's --json summary and ``inspect --json`` output, except the
attribute ``created``; the run's folder is replaced by ``<run>`` in paths.

Floats are compared exactly too (by hash), not within a tolerance: the run is seeded, single
threaded and on CPU, and on the machines CI runs on it is bit-for-bit reproducible (checked by
writing the reference twice). A different CPU kind or torch build may round a matrix product
differently; if this test then fails with only float datasets (and the fingerprints that hash
them) differing, regenerate the reference on that machine from the commit before the change
under test, rather than loosening the comparison.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("golden_run", Path(__file__).parent / "golden" / "golden_run.py")
golden_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(golden_run)


def _differences(expected, actual, where="") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{where}/{key}: missing")
            elif key not in expected:
                found.append(f"{where}/{key}: unexpected")
            else:
                found += _differences(expected[key], actual[key], f"{where}/{key}")
        return found
    return [] if expected == actual else [f"{where}: {str(expected)[:120]} != {str(actual)[:120]}"]


def test_fixed_run_gives_the_reference_artifacts(tmp_path):
    expected = json.loads(golden_run.REFERENCE.read_text())
    actual = json.loads(json.dumps(golden_run.golden(tmp_path / "golden")))
    differences = _differences(expected, actual)
    assert not differences, f"{len(differences)} difference(s):\n" + "\n".join(differences[:40])
