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
from deepuad.estimators.parts import KeptForest
from deepuad.estimators.scoring import FOREST_ARRAYS, forest_depth_limit
from deepuad.stages.answers import EXPLAIN_FLAGGED

MB = 1_000_000
UNDER_10_MB = 10 * MB - 4096  # "a crafted file under 10 MB": room for the padding dataset's header
CHUNK_BYTES = 4 << 20


def declared_limit(inflation, size: int = UNDER_10_MB) -> int:
    """The most bytes the datasets under ``inflation`` may declare in a file of ``size`` bytes."""
    return int(inflation_limit(inflation, size))


def x_rows_limit(width: int, size: int = UNDER_10_MB) -> int:
    """The most rows an X of ``width`` columns may declare in a file of ``size`` bytes (a row
    counts as X_INFLATION.row_bytes at least)."""
    return declared_limit(X_INFLATION, size) // max(4 * width, X_INFLATION.row_bytes)


def zeros_dataset(group: h5py.Group, name: str, shape: tuple, dtype, block: np.ndarray | None = None) -> h5py.Dataset:
    """A dataset of ``shape`` holding zeros (or ``block`` over and over: rows of ``shape[1:]``),
    deflate + shuffle compressed as deepuad's own writers compress, its chunks written already
    compressed (about 1,000:1 for zeros)."""
    dtype = np.dtype(dtype)
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, min(shape[0], CHUNK_BYTES // row_bytes))
    chunks = (rows, *shape[1:])
    dataset = group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, compression="gzip", shuffle=True)
    if block is None:
        plain = bytes(rows * row_bytes)
    else:  # the chunk's bytes as the shuffle filter stores them: each byte of every value together
        values = np.resize(np.asarray(block, dtype=dtype), chunks)
        plain = values.view(np.uint8).reshape(-1, dtype.itemsize).T.tobytes()
    packed = zlib.compress(plain, 9)
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
def features_at_limit(base: Path, out: Path, size: int = UNDER_10_MB, over: int = 0, per_row: bool = True,
                      width: int | None = None) -> Path:
    """A features file of ``size`` bytes whose X declares as many rows as its limit allows (plus
    ``over`` rows), at the base file's width and encoding (or ``width`` columns, an array's
    encoding); with ``per_row``, labels, ids that are not the row numbers and an id column, as
    many of them as fit (all read whole and carried into a scores file)."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        for name in ("X", "y", "ids", "id_columns", "dropped_rows", "padding"):
            if name in f:
                del f[name]
        if "id_columns" in f.attrs:
            del f.attrs["id_columns"]
        if width is not None:
            _array_encoding(f, width)
        width = f["feature_names"].shape[0]
        rows = x_rows_limit(width, size) + over
        zeros_dataset(f, "X", (rows, width), np.float32)
        f.flush()
        room = size - f.id.get_filesize() - 16384
        if per_row and room > rows:
            f.create_dataset("y", data=np.zeros(rows, dtype=np.int8))
            room -= rows
        if per_row and room > 8 * rows:
            f.create_dataset("ids", data=np.arange(rows, 0, -1, dtype=np.int64))
            room -= 8 * rows
        if per_row and room > 48 * rows:  # 16 bytes a row, and the text in the heap
            f.create_group("id_columns").create_dataset("0", data=np.full(rows, "host", dtype=object),
                                                        dtype=h5py.string_dtype())
            f.attrs["id_columns"] = json.dumps(["host"])
        _other_fingerprint(f)
    return pad(out, size)


def listed_features(base: Path, out: Path, rows: int, size: int = UNDER_10_MB) -> Path:
    """The features file of ``rows`` rows that a crafted scores file names, for ``top`` to list
    its rows at their costliest: X as wide as its limit allows at that many rows, of numbers that
    take 7 digits to write (a block of 1,024 rows over and over), and as many of the per-row
    datasets that top lists (ids, class_label, video, segment) as fit, at one byte a row."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        for name in ("X", "y", "ids", "id_columns", "feature_names", "encoding", "dropped_rows", "class_label", "video",
                     "segment", "padding"):
            if name in f:
                del f[name]
        if "id_columns" in f.attrs:
            del f.attrs["id_columns"]
        width = max(1, declared_limit(X_INFLATION, size) // (4 * rows))
        block = np.random.default_rng(0).random((1024, width), dtype=np.float32)
        zeros_dataset(f, "X", (rows, width), np.float32, block=block)
        _array_encoding(f, width)
        per_row = {"ids": (np.arange(rows) % 101).astype(np.int8), "class_label": (np.arange(rows) % 3).astype(np.int8),
                   "video": np.full(rows, b"v", dtype="S1"), "segment": (np.arange(rows) % 32).astype(np.int8)}
        for name, values in per_row.items():
            f.flush()
            if f.id.get_filesize() + rows + 8192 < size:
                f.create_dataset(name, data=values)
        _other_fingerprint(f)
    return pad(out, size)


def _array_encoding(f: h5py.File, width: int) -> None:
    """An array's encoding of ``width`` columns (x0, x1, ...), unscaled, in place of the file's."""
    for name in ("feature_names", "encoding"):
        if name in f:
            del f[name]
    names = [f"x{j}" for j in range(width)]
    f.create_dataset("feature_names", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
    encoding = {"encoding_version": 1, "array": True, "offset": [0.0] * width, "scale": [1.0] * width, "feature_names": names}
    f.create_dataset("encoding", data=json.dumps(encoding), dtype=h5py.string_dtype())


# ----------------------------------------------------------------------------- scores
def scores_at_limit(base: Path, out: Path, features: Path, size: int = UNDER_10_MB, rows: int | None = None,
                    flagged: bool = False) -> tuple[Path, int]:
    """A scores file of ``size`` bytes holding as many rows as fit uncompressed (deepuad never
    compresses them, so neither may the file), in their narrowest types: score float16,
    is_anomaly bool and y int8, 4 bytes a row (or ``rows`` rows); naming ``features`` as its
    features file. A tenth of them flagged, or every one (``flagged``: as no threshold of a
    real run flags them). Returns (path, rows)."""
    rows = (size - 64 * 1024) // 4 if rows is None else rows
    _copy(base, out)
    with h5py.File(out, "a") as f:
        for name in ("score", "is_anomaly", "y", "ids", "id_columns", "drift", "drift_psi"):
            if name in f:
                del f[name]
        f.create_dataset("score", data=np.linspace(0, 1, rows).astype(np.float16))
        f.create_dataset("is_anomaly", data=(np.arange(rows) % 10 == 0) | flagged)
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


def _replace_reference(f: h5py.File, reference: np.ndarray, tails: bool) -> None:
    """``scorer/reference`` replaced by ``reference``, every row of it kept, and the k-NN part's
    own rows the same rows (with ``tails``, the tails part's columns those rows, sorted)."""
    for name in ("scorer/reference", "scorer/reference_kept", "scorer/knn/reference", "scorer/tails/sorted"):
        if name in f:
            del f[name]
    f.create_dataset("scorer/reference", data=reference)
    f.create_dataset("scorer/reference_kept", data=np.ones(len(reference), dtype=np.uint8))
    f.create_dataset("scorer/knn/reference", data=reference)
    if tails:
        f.create_dataset("scorer/tails/sorted", data=np.sort(reference, axis=0))


def model_with_reference(base: Path, out: Path, size: int = UNDER_10_MB) -> Path:
    """A finished model whose k-NN rows fill the file (deepuad stores them uncompressed, so they
    may hold no more than the file does: the reference and the k-NN part's copy of it share it, and
    the tails part's sorted copy where the score has it), every row its neighbour (k = rows - 1)."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        width, tails = f["scorer/reference"].shape[1], "scorer/tails/sorted" in f
        for name in ("scorer/reference", "scorer/knn/reference", "scorer/tails/sorted"):
            if name in f:
                del f[name]
        rows = _model_size_left(f, size) // ((2 + tails) * 4 * width + 1)  # the reference and its copies
        rng = np.random.default_rng(0)
        _replace_reference(f, rng.random((rows, width), dtype=np.float32), tails)
        params = json.loads(f.attrs["params"])
        params["n_neighbors"] = rows - 1
        f.attrs["params"] = json.dumps(params)
        _other_fingerprint(f)
    return pad(out, size)


def model_with_forest(base: Path, out: Path, size: int = UNDER_10_MB) -> Path:
    """A finished model whose isolation forest is as costly to walk as the bounds allow (``base`` a
    model whose score has the forest): the most trees, each a chain of the most levels its samples allow, on a reference grown to make those
    samples as many as the file can hold."""
    _copy(base, out)
    with h5py.File(out, "a") as f:
        width, tails = f["scorer/reference"].shape[1], "scorer/tails/sorted" in f
        trees = KeptForest.MAX_TREES
        # the forest's bytes (5 arrays of 8 bytes a node, 2 x depth + 1 nodes a tree) and the
        # reference's (its rows bound the samples, and so the depth; the k-NN part's copy of it too)
        # share the file
        for depth in range(30, 0, -1):
            samples = 1 << (depth - 1)
            samples += 1  # ceil(log2(samples)) == depth
            forest_bytes = trees * (2 * depth + 1) * 40
            reference_bytes = (2 + tails) * samples * width * 4
            if forest_bytes + reference_bytes < _model_size_left(f, size):
                break
        assert forest_depth_limit(samples) == depth
        _replace_reference(f, np.zeros((samples, width), dtype=np.float32), tails)
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


# the widths of the narrow models whose features files are crafted too: below 40 columns a row
# costs a score about the same, so a file of them may declare as many rows as one of 40 columns
NARROW_WIDTHS = (2, 5, 10, 20, 40)


def build_base(folder: Path, cli, epochs: int = 100, widths: tuple = NARROW_WIDTHS) -> dict[str, Path]:
    """The run the crafted files are made from: 2,000 rows of the KDDCUP sample through extract,
    cluster, train (``epochs``) and score, and 1,000 further rows extracted with --like (the new
    data a model scores); the same training with ``--score distance+forest`` ("forest_model": the
    default score has no forest); and for each of ``widths``, a model of that many columns and its
    features (5,000 rows of five blobs, 2 epochs: "model{width}", "features{width}").
    ``cli(*args)`` runs the command line and returns (code, out, err)."""
    import gzip

    lines = gzip.open(SAMPLE, "rt").read().splitlines()
    (folder / "base.csv").write_text("\n".join(lines[:2001]) + "\n")
    (folder / "new.csv").write_text("\n".join([lines[0], *lines[2001:3001]]) + "\n")
    paths = {name: folder / f"{name}.h5" for name in ("features", "clusters", "model", "forest_model", "scores", "new")}
    label = ["--label-column", "label", "--anomaly-values", "normal."]
    steps = [("extract", folder / "base.csv", *label, "-o", paths["features"]),
             ("cluster", paths["features"], "-o", paths["clusters"]),
             ("train", paths["features"], paths["clusters"], "-o", paths["model"], "--epochs", epochs, "--threads", "1"),
             ("train", paths["features"], paths["clusters"], "-o", paths["forest_model"], "--epochs", epochs, "--threads", "1",
              "--score", "distance+forest"),
             ("score", paths["model"], paths["features"], "-o", paths["scores"], "--threads", "1"),
             ("extract", folder / "new.csv", "--like", paths["features"], "-o", paths["new"])]
    rng = np.random.default_rng(0)
    for width in widths:
        X = rng.random((5, width))[rng.integers(0, 5, 5_000)] + rng.normal(0, 0.05, (5_000, width))
        np.save(folder / f"blobs{width}.npy", X.astype(np.float32))
        paths.update({f"{kind}{width}": folder / f"{kind}{width}.h5" for kind in ("features", "clusters", "model")})
        steps += [("extract", folder / f"blobs{width}.npy", "-o", paths[f"features{width}"]),
                  ("cluster", paths[f"features{width}"], "-o", paths[f"clusters{width}"]),
                  ("train", paths[f"features{width}"], paths[f"clusters{width}"], "-o", paths[f"model{width}"], "--epochs", 2,
                   "--threads", "1")]
    for step in steps:
        code, _, err = cli(*step)
        assert code == 0, (step, err)
    return paths


def worst_cases(base: dict[str, Path], folder: Path) -> list[tuple[str, list, Path]]:
    """(name, deepuad arguments, the crafted file) of every command on the crafted files: a
    features file at its limit (score, explain, inspect), and one for each narrow model of
    ``base`` (score, explain); a scores file at its limit (inspect); the scores of the most rows
    a features file may hold (top; top --flagged of every row in each format); and four models
    at their limits (score, explain, inspect, and top --flagged --explain of the most rows it
    explains). Outputs go to ``folder``."""
    features = features_at_limit(base["features"], folder / "crafted.features.h5")
    listed = folder / "listed.features.h5"  # top lists rows of a features file: at most this many
    rows = x_rows_limit(1)
    listed_features(base["features"], listed, rows)
    scores, _ = scores_at_limit(base["scores"], folder / "crafted.scores.h5", listed, rows=rows)
    flagged, _ = scores_at_limit(base["scores"], folder / "flagged.scores.h5", listed, rows=rows, flagged=True)
    largest, _ = scores_at_limit(base["scores"], folder / "largest.scores.h5", listed)
    explained = _copy(base["scores"], folder / "explained.scores.h5")  # its EXPLAIN_FLAGGED highest scores flagged
    with h5py.File(explained, "a") as f:
        highest = np.argsort(-f["score"][()], kind="stable")[:EXPLAIN_FLAGGED]
        del f["is_anomaly"]
        f.create_dataset("is_anomaly", data=np.isin(np.arange(len(f["score"])), highest).astype(np.int8))
    out = folder / "out.h5"
    cases = [("features: score", ["-q", "score", base["model"], features, "-o", out, "--threads", "1"], features),
             ("features: explain", ["-q", "explain", base["model"], features, "--json"], features),
             ("features: inspect", ["-q", "inspect", features, "--json"], features)]
    for width in sorted(int(name[len("model"):]) for name in base if name.startswith("model") and name != "model"):
        narrow = features_at_limit(base[f"features{width}"], folder / f"crafted{width}.features.h5")
        cases += [(f"features, {width} columns: score", ["-q", "score", base[f"model{width}"], narrow, "-o", out, "--threads", "1"],
                   narrow),
                  (f"features, {width} columns: explain", ["-q", "explain", base[f"model{width}"], narrow, "--json"], narrow)]
    cases += [("scores: inspect", ["-q", "inspect", largest, "--json"], largest),
              ("scores: top", ["-q", "top", scores, "-n", "20", "--format", "csv"], scores)]
    for fmt, options in (("csv", ["--format", "csv"]), ("jsonl", ["--format", "jsonl"]), ("--json", ["--json"]),
                         ("parquet", ["-o", folder / "flagged.parquet"]), ("table", ["--format", "table"])):
        cases.append((f"scores, every row flagged: top --flagged ({fmt})", ["-q", "top", flagged, "--flagged", *options], flagged))
    for name, craft in MODELS.items():
        model = craft(base["forest_model" if name == "forest" else "model"], folder / f"{name}.model.h5")
        cases += [(f"model ({name}): score", ["-q", "score", model, base["new"], "-o", out, "--threads", "1", "--force"], model),
                  (f"model ({name}): explain", ["-q", "explain", model, base["new"], "--force", "--json"], model),
                  (f"model ({name}): top --flagged --explain ({EXPLAIN_FLAGGED} rows)",
                   ["-q", "top", explained, "--flagged", "--explain", "3", "--model", model, "--force", "--format", "csv"], model),
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
