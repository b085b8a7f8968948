"""No change of behaviour: a fixed small run of every stage gives exactly the artifacts it gave
before the redesign of issue 13 (tests/golden/reference.json, first written by that code and
regenerated since only for intended changes, each named in its commit; see tests/golden/golden_run.py
for the run and for how to regenerate it).

Every dataset (dtype, shape, SHA-256 of its bytes) and every attribute of every artifact is
compared, and every command's --json summary and ``inspect --json`` output, except the
attribute ``created``; the run's folder is replaced by ``<run>`` in paths, and the schema
version by ``"current"`` where it is the one this deepuad writes.

Floats are compared exactly too (by hash), not within a tolerance: the run is seeded, single
threaded and on CPU, and on one kind of CPU it is bit-for-bit reproducible (checked by writing
the reference twice). Another kind rounds matrix products differently (golden_run.py says what a
kind is), so there is one reference per kind that CI has run on, and the run must equal one of
them to the bit. On a kind without a reference the run must equal the first reference in all
but the last bits of its floats: every selection, label, count, shape, dtype and text exactly,
every float within 1e-4 relative (1e-6 absolute near 0), and the hashes of float datasets and the fingerprints over
them are left out. To make that check exact there, write the kind's reference from the commit
before the change under test (``python tests/golden/golden_run.py --write``).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

spec = importlib.util.spec_from_file_location("golden_run", Path(__file__).parent / "golden" / "golden_run.py")
golden_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(golden_run)


def _differences(expected, actual, where="", rounding=False) -> list[str]:
    """Where ``actual`` differs from ``expected``; with ``rounding``, floats within 1e-4 relative (1e-6
    near 0) count as equal, integers still must be equal, and the hashes that floats feed (a float
    dataset's sha256, a fingerprint) are skipped."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        float_dataset = str(expected.get("dtype", "")).startswith("float")
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{where}/{key}: missing")
            elif key not in expected:
                found.append(f"{where}/{key}: unexpected")
            elif not (rounding and (key == "fingerprint" or (key == "sha256" and float_dataset))):
                found += _differences(expected[key], actual[key], f"{where}/{key}", rounding)
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual) and rounding:
        return [found for i, (e, a) in enumerate(zip(expected, actual)) for found in _differences(e, a, f"{where}[{i}]", rounding)]
    if rounding and isinstance(expected, float) and isinstance(actual, float) and math.isclose(expected, actual, rel_tol=1e-4, abs_tol=1e-6):
        return []
    return [] if expected == actual else [f"{where}: {str(expected)[:120]} != {str(actual)[:120]}"]


def test_fixed_run_gives_the_reference_artifacts(tmp_path):
    actual = json.loads(json.dumps(golden_run.golden(tmp_path / "golden")))
    references = {path.name: json.loads(path.read_text()) for path in golden_run.references()}
    exact = {name: _differences(reference, actual) for name, reference in references.items()}
    if any(not found for found in exact.values()):
        return  # to the bit, as on the kind of CPU that wrote that reference
    kind = golden_run.cpu_kind()
    own = golden_run.reference_for(kind).name
    if own in references:
        differences = exact[own]
        raise AssertionError(f"{len(differences)} difference(s) from {own}:\n" + "\n".join(differences[:40]))
    first = next(iter(references))
    differences = _differences(references[first], actual, rounding=True)
    assert not differences, (f"no reference for this CPU kind ({kind}); beyond rounding, {len(differences)} "
                             f"difference(s) from {first}:\n" + "\n".join(differences[:40]))


def test_the_check_beyond_rounding_sees_what_the_method_changes():
    """On a CPU kind without a reference only rounding may differ: a selection, a count, a shape,
    an integer dataset's bytes or a float beyond 1e-4 still fails it."""
    reference = json.loads(golden_run.references()[0].read_text())
    model = reference["files"]["kdd.model.h5"]
    rounded = json.loads(json.dumps(reference))
    rounded["files"]["kdd.model.h5"]["/"]["attrs"]["fingerprint"] = "0" * 64
    rounded["files"]["kdd.model.h5"]["weights/encoder.0.weight"]["sha256"] = "0" * 64
    rounded["outputs"]["score"]["threshold"] *= 1 + 1e-6
    assert _differences(reference, rounded, rounding=True) == [] and _differences(reference, rounded) != []
    for change in ("selection", "count", "float", "shape"):
        changed = json.loads(json.dumps(reference))
        files = changed["files"]["kdd.model.h5"]
        if change == "selection":
            files["iterations/1/selected"]["sha256"] = "0" * 64
        elif change == "count":
            files["/"]["attrs"]["iterations"][1]["n_changed"] += 1
        elif change == "float":
            changed["outputs"]["score"]["threshold"] *= 1.001
        else:
            files["weights/encoder.0.weight"]["shape"][0] += 1
        assert _differences(reference, changed, rounding=True), change
    assert model["iterations/1/selected"]["dtype"].startswith("int")
