"""Crafted artifacts at the bounds deepuad sets, made from a real run's files: the worst a file
under 10 MB may hold for ``score``, ``inspect``, ``top`` and ``explain`` (tests/test_cli_bounds.py
checks the bounds themselves; its slow test and bench/crafted_cost.py time the commands on them).

Each function copies a base artifact and rewrites it with h5py as an attacker would: the most
data its kind lets a file of ``size`` bytes declare, of the most compressible content (zeros,
written as pre-compressed chunks so that crafting 160 MiB takes a moment), and every per-row
dataset a command reads whole at its largest, then padding up to ``size``. Content that a
reader checks (fingerprints, lengths, forests) is kept consistent so that the file is read, not
refused: what is measured is the work it causes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np

from deepuad.artifacts.features import X_INFLATION
from deepuad.artifacts.model import SELECTIONS_INFLATION, weight_shapes
from deepuad.artifacts.safe_read import inflation_limit
from deepuad.estimators.parts import ReferenceForest
from deepuad.estimators.scoring import FOREST_ARRAYS, forest_depth_limit

MB = 1_000_000
UNDER_10_MB = 10 * MB - 4096  # "a crafted file under 10 MB": room for the padding dataset's header
CHUNK_BYTES = 4 << 20


def declared_limit(inflation, size: int = UNDER_10_MB) -> int:
    """The most bytes the datasets under ``inflation`` may declare in a file of ``size`` bytes."""
    return int(inflation_limit(inflation, size))


def zeros_dataset(group: h5py.Group, name: str, shape: tuple, dtype) -> h5py.Dataset:
    """A dataset of ``shape`` holding zeros, deflate + shuffle compressed as deepuad's own
    writers compress, its chunks written already compressed (about 1,000:1)."""
    dtype = np.dtype(dtype)
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, min(shape[0], CHUNK_BYTES // row_bytes))
    chunks = (rows, *shape[1:])
    dataset = group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip", shuffle=True)
    packed = zlib.compress(bytes(rows * row_bytes), 9)
    for first in range(0, shape[0], rows):
        dataset.id.write_direct_chunk((first, *([0] * (len(shape) - 1))), packed)
    return dataset


def pad(path: Path, size: int = UNDER_10_MB) -> Path:
    """Bring the file to ``size`` bytes with a dataset no command reads (stored, uncompressed)."""
    missing = size - path.stat().st_size - 2048
    if missing > 0:
        with h5py.File(path, "a") as f:
            f.create_dataset("padding", data=np.zeros(missing, dtype=np.uint8))
    return path


def _copy(base: Path, out: Path) -> Path:
    shutil.copyfile(base, out)
    return out


def _other_fingerprint(f: h5py.File) -> None:
    """Another file than the one the model was trained on, so that score computes every score."""
    f.attrs["fingerprint"] = "c" * 64


# ----------------------------------------------------------------------------- features
def features_at_limit(base: Path, out: Path, size: int = UNDER_10_MB, over: int = 0, per_row: bool = True) -> Path:
    """A features file of ``size`` bytes whose X declares as many rows as its limit allows (plus
    ``over`` rows), at the base file's width and encoding; with ``per_row``, ids that are not the
    row numbers, an id column and labels too (all read whole and carried into a scores file)."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        width = f["X"].shape[1]
        rows = declared_limit(X_INFLATION, size) // (4 * width) + over
        for name in ("X", "y", "ids", "id_columns", "dropped_rows", "padding"):
            if name in f:
                del f[name]
        if "id_columns" in f.attrs:
            del f.attrs["id_columns"]
        zeros_dataset(f, "X", (rows, width), np.float32)
        if per_row:
            f.create_dataset("y", data=np.zeros(rows, dtype=np.int8))
            f.create_dataset("ids", data=np.arange(rows, 0, -1, dtype=np.int64))
            f.create_group("id_columns").create_dataset("0", data=np.full(rows, "host", dtype=object),
                                                        dtype=h5py.string_dtype())
            f.attrs["id_columns"] = json.dumps(["host"])
        _other_fingerprint(f)
    return pad(out, size)


def narrow_features(base: Path, out: Path, rows: int) -> Path:
    """A features file of one column and ``rows`` rows (no ids, no labels): the features file
    that a crafted scores file of ``rows`` rows can name, since top reads only its chosen rows."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        for name in ("X", "y", "ids", "id_columns", "feature_names", "encoding", "dropped_rows"):
            if name in f:
                del f[name]
        for attr in ("id_columns",):
            if attr in f.attrs:
                del f.attrs[attr]
        zeros_dataset(f, "X", (rows, 1), np.float32)
        f.create_dataset("feature_names", data=np.array(["x0"], dtype=object), dtype=h5py.string_dtype())
        encoding = {"encoding_version": 1, "array": True, "offset": [0.0], "scale": [1.0], "feature_names": ["x0"]}
        f.create_dataset("encoding", data=json.dumps(encoding), dtype=h5py.string_dtype())
        _other_fingerprint(f)
    return out


# ----------------------------------------------------------------------------- scores
def scores_at_limit(base: Path, out: Path, features: Path, size: int = UNDER_10_MB) -> tuple[Path, int]:
    """A scores file of ``size`` bytes holding as many rows as fit uncompressed (score,
    is_anomaly and y: 6 bytes a row; deepuad never compresses them, so neither may the file),
    naming ``features`` as its features file. Returns (path, rows)."""
    rows = (size - 64 * 1024) // 6
    _copy(base, out)
    with h5py.File(out, "a") as f:
        for name in ("score", "is_anomaly", "y", "ids", "id_columns", "drift", "drift_psi"):
            if name in f:
                del f[name]
        f.create_dataset("score", data=np.linspace(0, 1, rows, dtype=np.float32))
        f.create_dataset("is_anomaly", data=(np.arange(rows) % 10 == 0).astype(np.int8))
        f.create_dataset("y", data=(np.arange(rows) % 7 == 0).astype(np.int8))
        inputs = json.loads(f.attrs["inputs"])
        inputs["features"] = {"path": str(features), "fingerprint": "c" * 64}
        f.attrs["inputs"] = json.dumps(inputs)
        f.attrs["threshold"] = 0.9
    return out, rows


# ----------------------------------------------------------------------------- models
def _model_size_left(f: h5py.File, size: int) -> int:
    f.flush()
    return size - f.id.get_filesize() - 64 * 1024


def model_with_selections(base: Path, out: Path, size: int = UNDER_10_MB, over: int = 0) -> Path:
    """A finished model whose selections (read whole by every reader of a model) declare as many
    bytes as the limit allows (plus ``over`` indices), all of row 0 of a training set of that
    many rows."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        records = len(json.loads(f.attrs["iterations"]))
        total = declared_limit(SELECTIONS_INFLATION, size) // 8 + over
        each = -(-total // records)
        if "training_scores" in f:  # one score per declared training row: drop it, as the row count grows
            del f["training_scores"]
        f.attrs["n_rows"] = each
        for t in range(records):
            del f[f"iterations/{t}/selected"]
            zeros_dataset(f, f"iterations/{t}/selected", (each if t < records - 1 else total - each * (records - 1),), np.int64)
            f[f"iterations/{t}"].attrs["n_selected"] = f[f"iterations/{t}/selected"].shape[0]
        _other_fingerprint(f)
    return pad(out, size)


def _replace_reference(f: h5py.File, reference: np.ndarray) -> None:
    """``scorer/reference`` replaced by ``reference``, every row of it kept, and the k-NN part's
    own rows the same rows."""
    for name in ("scorer/reference", "scorer/reference_kept", "scorer/knn/reference"):
        if name in f:
            del f[name]
    f.create_dataset("scorer/reference", data=reference)
    f.create_dataset("scorer/reference_kept", data=np.ones(len(reference), dtype=np.uint8))
    f.create_dataset("scorer/knn/reference", data=reference)


def model_with_reference(base: Path, out: Path, size: int = UNDER_10_MB) -> Path:
    """A finished model whose k-NN rows fill the file (deepuad stores them uncompressed, so they
    may hold no more than the file does: the reference and the k-NN part's copy of it share it),
    every row its neighbour (k = rows - 1)."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        width = f["scorer/reference"].shape[1]
        for name in ("scorer/reference", "scorer/knn/reference"):
            if name in f:
                del f[name]
        rows = _model_size_left(f, size) // (2 * 4 * width + 1)
        rng = np.random.default_rng(0)
        _replace_reference(f, rng.random((rows, width), dtype=np.float32))
        params = json.loads(f.attrs["params"])
        params["n_neighbors"] = rows - 1
        f.attrs["params"] = json.dumps(params)
        _other_fingerprint(f)
    return pad(out, size)


def model_with_forest(base: Path, out: Path, size: int = UNDER_10_MB) -> Path:
    """A finished model whose isolation forest is as costly to walk as the bounds allow: the most
    trees, each a chain of the most levels its samples allow, on a reference grown to make those
    samples as many as the file can hold."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        width = f["scorer/reference"].shape[1]
        trees = ReferenceForest.MAX_TREES
        # the forest's bytes (5 arrays of 8 bytes a node, 2 x depth + 1 nodes a tree) and the
        # reference's (its rows bound the samples, and so the depth; the k-NN part's copy of it too)
        # share the file
        for depth in range(30, 0, -1):
            samples = 1 << (depth - 1)
            samples += 1  # ceil(log2(samples)) == depth
            forest_bytes = trees * (2 * depth + 1) * 40
            reference_bytes = 2 * samples * width * 4
            if forest_bytes + reference_bytes < _model_size_left(f, size):
                break
        assert forest_depth_limit(samples) == depth
        _replace_reference(f, np.zeros((samples, width), dtype=np.float32))
        nodes = 2 * depth + 1
        left = np.full(trees * nodes, -1, dtype=np.int64)
        right = np.full(trees * nodes, -1, dtype=np.int64)
        for i in range(depth):  # node 2i of a tree: a leaf on its left, the chain going on to the right
            left[2 * i :: nodes] = np.arange(trees) * nodes + 2 * i + 1
            right[2 * i :: nodes] = np.arange(trees) * nodes + 2 * i + 2
        arrays = {"left": left, "right": right, "feature": np.zeros(trees * nodes, dtype=np.int64),
                  "threshold": np.full(trees * nodes, -1.0), "n_samples": np.ones(trees * nodes, dtype=np.int64),
                  "roots": np.arange(trees, dtype=np.int64) * nodes, "max_samples": np.array([samples], dtype=np.int64)}
        assert set(arrays) == set(FOREST_ARRAYS)
        for name, values in arrays.items():
            del f[f"scorer/forest/{name}"]
            f.create_dataset(f"scorer/forest/{name}", data=values)
        _other_fingerprint(f)
    return pad(out, size)


def model_with_network(base: Path, out: Path, size: int = UNDER_10_MB) -> Path:
    """A finished model whose network is as large as the file can hold (its weights stored
    uncompressed, as deepuad stores them): two hidden layers as wide as fit, then the base
    model's code layer."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        architecture = json.loads(f.attrs["architecture"])
        n_features, code = architecture["n_features"], architecture["layers"][-1]
        for name in [name for name in f if name in ("weights", "optimizer")]:
            del f[name]
        room = _model_size_left(f, size) // 4
        width = 1
        while sum(int(np.prod(s)) for s in weight_shapes(n_features, [width + 1, width + 1, code]).values()) < room:
            width += 1
        architecture["layers"] = [width, width, code]
        f.attrs["architecture"] = json.dumps(architecture)
        params = json.loads(f.attrs["params"])
        params["layers"] = architecture["layers"]
        f.attrs["params"] = json.dumps(params)
        rng = np.random.default_rng(0)
        for name, shape in weight_shapes(n_features, architecture["layers"]).items():
            f.create_dataset(name, data=(rng.standard_normal(shape) * 0.01).astype(np.float32))
        _other_fingerprint(f)
    return pad(out, size)


MODELS = {"selections": model_with_selections, "reference": model_with_reference, "forest": model_with_forest,
          "network": model_with_network}


# ----------------------------------------------------------------------------- measuring a command
# runs ``deepuad ARGS`` as its only child and reports the child's peak resident memory
_MEASURED = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run([sys.executable, "-m", "deepuad", *sys.argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(done.returncode, round(seconds, 3), round(usage.ru_utime + usage.ru_stime, 3), usage.ru_maxrss)
sys.stderr.write(done.stderr)
"""


def measured(args, cwd: Path, env: dict | None = None, timeout: float = 600) -> dict:
    """``deepuad ARGS`` in a fresh process: its exit code, stderr, wall seconds (start-up
    included), CPU seconds (user + system: what a busy machine does not inflate) and peak
    resident memory in MiB."""
    done = subprocess.run([sys.executable, "-c", _MEASURED, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env or os.environ, timeout=timeout)
    code, seconds, cpu, peak_kib = done.stdout.split()
    return {"code": int(code), "err": done.stderr, "seconds": float(seconds), "cpu_seconds": float(cpu),
            "peak_mib": int(peak_kib) / 1024}


# ----------------------------------------------------------------------------- the cases
SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "kddcup99_5k.csv.gz"


def build_base(folder: Path, cli, epochs: int = 100) -> dict[str, Path]:
    """The run the crafted files are made from: 2,000 rows of the KDDCUP sample through extract,
    cluster, train (``epochs``) and score, and 1,000 further rows extracted with --like (the new
    data a model scores). ``cli(*args)`` runs the command line and returns (code, out, err)."""
    import gzip

    lines = gzip.open(SAMPLE, "rt").read().splitlines()
    (folder / "base.csv").write_text("\n".join(lines[:2001]) + "\n")
    (folder / "new.csv").write_text("\n".join([lines[0], *lines[2001:3001]]) + "\n")
    paths = {name: folder / f"{name}.h5" for name in ("features", "clusters", "model", "scores", "new")}
    label = ["--label-column", "label", "--anomaly-values", "normal."]
    steps = [("extract", folder / "base.csv", *label, "-o", paths["features"]),
             ("cluster", paths["features"], "-o", paths["clusters"]),
             ("train", paths["features"], paths["clusters"], "-o", paths["model"], "--epochs", epochs, "--threads", "1"),
             ("score", paths["model"], paths["features"], "-o", paths["scores"], "--threads", "1"),
             ("extract", folder / "new.csv", "--like", paths["features"], "-o", paths["new"])]
    for step in steps:
        code, _, err = cli(*step)
        assert code == 0, (step, err)
    return paths


# cases known to exceed 10 s or 1 GiB (docs/threat-model.md): top --flagged lists every flagged row,
# and its time and memory grow with them
OPEN = ("scores, every row flagged: top --flagged",)


def worst_cases(base: dict[str, Path], folder: Path) -> list[tuple[str, list, Path]]:
    """(name, deepuad arguments, the crafted file) of every command on the crafted files: a
    features file at its limit (score, explain, inspect), a scores file at its limit (top,
    inspect; top --flagged with every row flagged, which is ``OPEN``) and four models at theirs
    (score, explain, top --explain, inspect). Outputs go to ``folder``."""
    features = features_at_limit(base["features"], folder / "crafted.features.h5")
    narrow = folder / "narrow.features.h5"
    scores, rows = scores_at_limit(base["scores"], folder / "crafted.scores.h5", narrow)
    narrow_features(base["features"], narrow, rows)
    out = folder / "out.h5"
    flagged = folder / "flagged.scores.h5"  # every row flagged, as no threshold of a real run flags them
    flagged.write_bytes(scores.read_bytes())
    with h5py.File(flagged, "a") as f:
        del f["is_anomaly"]
        f.create_dataset("is_anomaly", data=np.ones(rows, dtype=np.int8))
    cases = [("features: score", ["-q", "score", base["model"], features, "-o", out, "--threads", "1"], features),
             ("features: explain", ["-q", "explain", base["model"], features, "--json"], features),
             ("features: inspect", ["-q", "inspect", features, "--json"], features),
             ("scores: top", ["-q", "top", scores, "-n", "20", "--format", "csv"], scores),
             ("scores: inspect", ["-q", "inspect", scores, "--json"], scores),
             (OPEN[0], ["-q", "top", flagged, "--flagged", "--format", "csv"], flagged)]
    for name, craft in MODELS.items():
        model = craft(base["model"], folder / f"{name}.model.h5")
        cases += [(f"model ({name}): score", ["-q", "score", model, base["new"], "-o", out, "--threads", "1", "--force"], model),
                  (f"model ({name}): explain", ["-q", "explain", model, base["new"], "--force", "--json"], model),
                  (f"model ({name}): top --explain", ["-q", "top", base["scores"], "--explain", "3", "--model", model, "--force",
                                                      "--format", "csv"], model),
                  (f"model ({name}): inspect", ["-q", "inspect", model, "--json"], model)]
    return cases


def aliased_chunks(base: Path, out: Path, name: str = "X", chunks: int = 64, drop: tuple = ()) -> Path:
    """The base artifact with dataset ``name`` rewritten plainly as ``chunks`` chunks whose index
    entries all point at the first chunk's bytes, the others cut from the file: a file of a
    fraction of the size that its datasets claim to store (superblock version 0, which holds the
    end-of-file address without a checksum, as deepuad writes it). ``drop``: datasets removed
    first (those whose length must match the new one's)."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        shape, dtype = f[name].shape, f[name].dtype
        for other in (name, *drop):
            del f[other]
        rows = max(1, (1 << 20) // (dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))))
        dataset = f.create_dataset(name, shape=(rows * chunks, *shape[1:]), dtype=dtype, chunks=(rows, *shape[1:]))
        plain = bytes(rows * dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
        for index in range(chunks):
            dataset.id.write_direct_chunk((index * rows, *([0] * (len(shape) - 1))), plain)
    with h5py.File(out) as f:
        where = [f[name].id.get_chunk_info(index) for index in range(chunks)]
    data = bytearray(out.read_bytes())
    first = where[0].byte_offset
    end = first + where[0].size
    assert sorted(w.byte_offset for w in where)[0] == first and max(w.byte_offset + w.size for w in where) == len(data)
    for chunk in where[1:]:  # the chunk index lies before the data it indexes
        entry = data.index(chunk.byte_offset.to_bytes(8, "little"), 0, first)
        data[entry : entry + 8] = first.to_bytes(8, "little")
    eof = data.index(len(data).to_bytes(8, "little"), 0, 64)  # in the superblock
    data[eof : eof + 8] = end.to_bytes(8, "little")
    out.write_bytes(bytes(data[:end]))
    return out
