"""A fixed small run of every stage, and a digest of every artifact it writes.

Used by ``tests/test_golden.py`` to prove that a change of code layout changed no behaviour: the
run's artifacts must give exactly the digest stored in a reference (``reference.json``, first written
by the code as it was before the redesign of issue 13; ``git log tests/golden/`` lists every intended
change of behaviour since). Regenerate the references only for such a change, and say so in the commit:

    python tests/golden/golden_run.py --write

Matrix products round differently on another kind of CPU (torch's kernels for AVX2 or AVX-512,
NumPy's BLAS kernels for one CPU family or another), so every float of the run may differ in its
last bits there while every selection stays the same. Hence one reference per CPU kind,
``reference.<kind>.json`` on the kind ``cpu_kind()`` names (the AMD EPYC one, ``reference.json``, went
with the change of the default score to distance+forest, which only that kind could rewrite). ``--write`` writes the one of the machine
it runs on; after a change of behaviour, delete the references you cannot rewrite (on a kind
without one the test compares within a tolerance: tests/test_golden.py says how).

The run (sample_data/kddcup99_5k.csv.gz cut to 1,200 rows, seed 0, one thread):
extract, extract --like, extract of a .npy array, cluster (gmm and distribution), train for 4
epochs and then --resume to 8, score, score --shard 0/2 and 1/2, merge-scores, baseline iforest
and ae, evaluate (metrics.json), run (all four stages into one folder), and inspect --json of
every artifact.

The digest of an HDF5 file holds, for every dataset, its dtype, shape and the SHA-256 of its
bytes, and every attribute of every group and dataset (JSON text parsed). The attribute
``created`` is left out, and the run's folder is replaced by ``<run>`` wherever it appears, so
the paths compare by their names within the run only. The schema version a file records (and
``inspect`` reports) is ``"current"`` when it is the one this deepuad writes (any other number
stays): a new schema version changes no behaviour, and leaves every reference as it was.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO / "bench"), str(HERE.parent)]
import helpers  # noqa: E402  (tests/helpers.py: the CLI in-process)
from common import cpu_kernels  # noqa: E402  (the benches name the machine by the same kernels)
SAMPLE = REPO / "sample_data" / "kddcup99_5k.csv.gz"
REFERENCE = HERE / "reference.json"  # the first reference's name (its CPU kind was not recorded)
ROWS = 1200
TRAIN = ["--epochs", "4", "--r", "2", "--layers", "16,8", "--batch-size", "128", "--reselect-sample", "0",
         "--threads", "1", "--seed", "0", "--device", "cpu"]


def cli(*args) -> str:
    """The CLI in-process; its stdout, or AssertionError with its stderr if it did not exit 0."""
    code, out, err = helpers.cli(*args)
    if code != 0:
        raise AssertionError(f"deepuad {' '.join(map(str, args))} exited {code}: {err}")
    return out


def run_all(folder: Path) -> dict[str, str]:
    """Run every stage into ``folder``; {name: inspect --json or command's --json output}."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(SAMPLE, "rt") as source:
        lines = source.read().splitlines()[: ROWS + 1]
    table = folder / "kdd.csv"
    table.write_text("\n".join(lines) + "\n")
    (folder / "new.csv").write_text("\n".join(lines[:1] + lines[1::3]) + "\n")
    rng = np.random.default_rng(0)
    np.save(folder / "arr.npy", np.concatenate([rng.normal(size=(150, 6)), rng.normal(4, 1, size=(10, 6))]).astype(np.float32))

    out: dict[str, str] = {}
    labels = ["--label-column", "label", "--anomaly-values", "normal."]
    out["extract"] = cli("extract", table, "-o", folder / "kdd.features.h5", *labels, "--json")
    out["extract_like"] = cli("extract", folder / "new.csv", "--like", folder / "kdd.features.h5", "-o",
                              folder / "new.features.h5", *labels, "--json")
    out["extract_npy"] = cli("extract", folder / "arr.npy", "-o", folder / "arr.features.h5", "--json")
    out["cluster"] = cli("cluster", folder / "kdd.features.h5", "-o", folder / "kdd.clusters.h5", "--p0", "35",
                         "--clusters", "8", "--seed", "0", "--json")
    out["cluster_distribution"] = cli("cluster", folder / "arr.features.h5", "-o", folder / "arr.clusters.h5",
                                      "--method", "distribution", "--thres", "auto", "--anchors", "64", "--json")
    model = folder / "kdd.model.h5"
    out["train"] = cli("train", folder / "kdd.features.h5", folder / "kdd.clusters.h5", "-o", model, *TRAIN, "--json")
    resumed = [a if a != "4" else "8" for a in TRAIN]
    out["train_resume"] = cli("train", folder / "kdd.features.h5", folder / "kdd.clusters.h5", "-o", model, *resumed,
                              "--resume", "--json")
    out["score"] = cli("score", model, folder / "kdd.features.h5", "-o", folder / "kdd.scores.h5", "--batch-rows", "256",
                       "--threads", "1", "--device", "cpu", "--json")
    out["score_new"] = cli("score", model, folder / "new.features.h5", "-o", folder / "new.scores.h5", "--contamination",
                           "0.2", "--threads", "1", "--device", "cpu", "--json")
    for i in range(2):
        out[f"shard{i}"] = cli("score", model, folder / "kdd.features.h5", "--shard", f"{i}/2", "--batch-rows", "256",
                               "-o", folder / f"kdd.scores.shard-{i}-of-2.h5", "--threads", "1", "--device", "cpu", "--json")
    out["merge"] = cli("merge-scores", *(folder / f"kdd.scores.shard-{i}-of-2.h5" for i in range(2)), "-o",
                       folder / "kdd.merged.scores.h5", "--json")
    out["baseline_iforest"] = cli("baseline", folder / "kdd.features.h5", "--method", "iforest", "--score-features",
                                  folder / "new.features.h5", "-o", folder / "new.iforest.scores.h5", "--json")
    out["baseline_ae"] = cli("baseline", folder / "kdd.features.h5", "--method", "ae", "--epochs", "3", "--layers", "16,8",
                             "-o", folder / "kdd.ae.scores.h5", "--threads", "1", "--device", "cpu", "--json")
    out["evaluate"] = cli("evaluate", folder / "kdd.scores.h5", "--json")
    (folder / "report").mkdir()
    cli("evaluate", folder / "kdd.scores.h5", "--plots", folder / "report", "--json")
    out["metrics.json"] = (folder / "report" / "metrics.json").read_text()
    out["run"] = cli("run", table, "-o", folder / "run", *labels, "--epochs", "4", "--r", "2", "--clusters", "8",
                     "--layers", "16,8", "--threads", "1", "--device", "cpu", "--json")
    for path in sorted(folder.rglob("*.h5")):
        out[f"inspect {path.relative_to(folder)}"] = cli("inspect", path, "--json")
    return out


SCHEMA_VERSION_KEYS = ("deepuad_schema_version", "schema_version")  # an artifact's attribute, inspect's key


def _version(value, folder: str):
    from deepuad.artifacts import SCHEMA_VERSION

    value = _plain(value, folder)
    return "current" if value == SCHEMA_VERSION else value


def _plain(value, folder: str):
    """An attribute or JSON value made comparable: arrays as lists, bytes as text, the run's
    folder as ``<run>``, JSON text parsed, the current schema version as ``"current"``."""
    if isinstance(value, np.ndarray):
        return [_plain(v, folder) for v in value.tolist()]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        value = value.replace(folder, "<run>")
        if value[:1] in "{[":
            with contextlib.suppress(ValueError):
                return _plain(json.loads(value), folder)
        return value
    if isinstance(value, dict):
        return {k: (_version if k in SCHEMA_VERSION_KEYS else _plain)(v, folder) for k, v in value.items() if k != "created"}
    if isinstance(value, list):
        return [_plain(v, folder) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def _dataset_digest(dataset, folder: str) -> dict:
    data = dataset[()]
    if dataset.dtype.kind in "OS":  # strings: compared as text, the run's folder replaced
        data = np.asarray(_plain(np.asarray(data, dtype=object), folder), dtype=object)
        raw = json.dumps(data.tolist()).encode()
    else:
        raw = np.ascontiguousarray(data).tobytes()
    return {"dtype": str(dataset.dtype), "shape": list(dataset.shape), "sha256": hashlib.sha256(raw).hexdigest()}


def digest_h5(path: Path, folder: str) -> dict:
    import h5py

    entries: dict[str, dict] = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            entry = {"attrs": _plain(dict(obj.attrs), folder)}
            if isinstance(obj, h5py.Dataset):
                entry.update(_dataset_digest(obj, folder))
            entries[name] = entry

        visit("/", f)
        f.visititems(visit)
    return entries


def digest(folder: Path, outputs: dict[str, str]) -> dict:
    text = str(folder)
    result = {"outputs": {name: _plain(value.strip(), text) for name, value in outputs.items()}}
    result["files"] = {str(p.relative_to(folder)): digest_h5(p, text) for p in sorted(folder.rglob("*.h5"))}
    return result




def golden(folder: Path) -> dict:
    return digest(folder, run_all(folder))


def cpu_kind() -> str:
    """What decides how this machine rounds a matrix product: torch's CPU kernels and NumPy's BLAS
    core (bench/common.py's ``cpu_kernels``) and the CPU's maker, e.g.
    "AVX512-openblas.SkylakeX-GenuineIntel". The maker counts: an AMD EPYC whose torch and OpenBLAS
    pick the same kernels as an Intel Xeon still rounds some products differently in the last bits."""
    return "-".join((*cpu_kernels(), cpu_vendor()))


def cpu_vendor() -> str:
    """The CPU's maker as /proc/cpuinfo names it ("GenuineIntel", "AuthenticAMD"), else "unknown"."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip() or "unknown"
    except OSError:
        pass
    return "unknown"


def reference_for(kind: str) -> Path:
    return HERE / f"reference.{kind}.json"


def references() -> list[Path]:
    """Every stored reference, the first one first."""
    return sorted(HERE.glob("reference*.json"), key=lambda path: (path != REFERENCE, path.name))


if __name__ == "__main__":
    import tempfile

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = golden(Path(tmp) / "golden")
    if "--write" in sys.argv:
        path = reference_for(cpu_kind())
        path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    else:
        print(json.dumps(result, indent=1, sort_keys=True)[:2000])
