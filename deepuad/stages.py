"""The four stages (extract, cluster, train, score) as functions: read artifacts, call the
algorithm, write artifacts, return a JSON-able summary. The CLI is a thin layer over these;
they do no printing. Long loops report through ``progress(description, completed, total)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from deepuad import __version__
from deepuad import artifacts as art
from deepuad.errors import DataError, DeviceError, InputError, OutputError, StaleError, UsageError

Progress = Callable[[str, int, int], None]


def _no_progress(description: str, completed: int, total: int) -> None:
    pass


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_output(input_path: str | Path, suffix: str) -> Path:
    """``data/kdd.csv.gz`` + ``features`` -> ``data/kdd.features.h5``; ``x.features.h5`` + ``clusters``
    -> ``x.clusters.h5``; ``x.scores.shard-0-of-4.h5`` + ``scores`` -> ``x.scores.h5`` (the stage
    suffix of an artifact is replaced, not stacked)."""
    path = Path(input_path)
    stem = path.name
    for ending in (".gz", ".bz2", ".xz", ".zip", ".h5", ".csv", ".tsv", ".tab", ".txt", ".npz", ".npy"):
        if stem.lower().endswith(ending):
            stem = stem[: -len(ending)]
    stem = re.sub(r"\.shard-\d+-of-\d+$", "", stem)
    for kind in art.KINDS:
        if stem.endswith("." + kind):
            stem = stem[: -len(kind) - 1]
    return path.with_name(f"{stem}.{suffix}.h5")


def require_input_file(path: str | Path) -> Path:
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError("no such file", path) from None
    except OSError as error:  # a name too long, a loop of links
        raise InputError(f"cannot read: {error.strerror or error}", path) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError("is a directory, expected a file", path)
    if not stat.S_ISREG(info.st_mode):  # a FIFO blocks, a device never ends
        raise InputError("is not a regular file (a device, FIFO or socket)", path)
    if not os.access(path, os.R_OK):
        raise InputError("is not readable (permissions)", path)
    if info.st_size == 0:
        raise InputError("is empty", path)
    return path


def require_exists(path: str | Path, what: str = "no such file or folder") -> Path:
    """``path`` if it exists; InputError otherwise, also for names the OS refuses (too long)."""
    path = Path(path)
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(what, path) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", path) from None
    return path


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} asked for, but no CUDA GPU is available (use --device cpu or auto)")
        return device
    raise UsageError(f"--device must be auto, cpu or cuda[:N], got {device!r}")


MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))


def set_threads(threads: int | None, processes_per_node: int = 1) -> int:
    """Pin torch and BLAS thread pools. Default: 1 thread on machines with <= 2 cores (spinning
    OpenMP threads make a small net 50x slower when another process shares the CPU), else
    half the cores, at most 8, shared by the processes torchrun started on this node."""
    import torch
    from threadpoolctl import threadpool_limits

    if threads is None:
        cores = os.cpu_count() or 1
        threads = 1 if cores <= 2 else max(1, min(8, cores // 2) // processes_per_node)
    if not 1 <= threads <= MAX_THREADS:  # OpenMP segfaults creating 100,000 threads
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS}, got {threads}")
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    return threads


def existing_artifact_matches(output, kind: str, params: dict, inputs: dict) -> bool | None:
    """For ``deepuad run``: None if ``output`` is missing or differs (other parameters, other
    inputs, unreadable); else whether it is complete (a model may be a checkpoint)."""
    from deepuad.errors import DeepUADError

    if not Path(output).exists():
        return None
    try:
        with art.open_artifact(output, kind) as f:
            same_params = art.params_of(f) == json.loads(json.dumps(params, default=art._json_default))
            recorded = art.inputs_of(f)
            same_inputs = all(
                recorded.get(role, {}).get(key) == source.get(key) for role, source in inputs.items() for key in ("fingerprint", "sha256")
            )
            complete = bool(f.attrs.get("complete", True))
    except DeepUADError:
        return None
    return complete if same_params and same_inputs else None


def _skipped(output) -> dict:
    return {"output": str(output), "skipped": True, "reason": "up to date (same parameters and inputs)"}


def encoding_fingerprint(encoding: dict) -> str:
    return hashlib.sha256(json.dumps(encoding, sort_keys=True).encode()).hexdigest()


# =========================================================================== extract
INPUT_TYPES = ("auto", "table", "numpy", "idx", "images", "video")


def detect_input_type(path: Path) -> str:
    """table (CSV/TSV), numpy (.npy/.npz), idx (MNIST), images or video (folders)."""
    from deepuad.media import list_image_files

    name = path.name.lower()
    if path.is_dir():
        return "images" if list_image_files(path) else "video"
    if name.endswith((".npy", ".npz")):
        return "numpy"
    if "idx" in name or name.endswith(("-ubyte", "-ubyte.gz")):
        return "idx"
    return "table"


def input_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's sorted (relative path, file SHA-256) listing."""
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def extract(
    input_path,
    output=None,
    like=None,
    input_type="auto",
    categorical=(),
    drop=(),
    label_column=None,
    anomaly_values=None,
    scale=None,
    chunk_rows=100_000,
    text_encoding="utf-8",
    compress=False,
    labels=None,
    size=(32, 32),
    grayscale=False,
    model=None,
    device="auto",
    annotations=None,
    segment_frames=16.0,
    per_video=False,
    normal_class=None,
    anomaly_ratio=None,
    seed=0,
    skip_current=False,
    progress: Progress = _no_progress,
) -> dict:
    """Raw input -> features artifact (X, y, feature_names, ids, encoding).

    Tables are encoded in streamed chunks; NumPy arrays, MNIST IDX, image folders (raw pixels
    or a TorchScript extractor's output) and per-video feature files are read whole.
    ``scale`` defaults to minmax for tables and NumPy arrays and to none for pixels/video."""
    from deepuad.parquet_input import read_any_table  # CSV/TSV, or Parquet/Arrow through pyarrow (issue 15)
    from deepuad.tabular import TabularEncoder

    input_path = require_exists(input_path)
    if input_type not in INPUT_TYPES:
        raise UsageError(f"--type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}")
    if input_type == "auto":
        input_type = detect_input_type(input_path)
    if input_type not in ("images", "video"):
        require_input_file(input_path)
    if scale is None:
        scale = "minmax" if input_type in ("table", "numpy") else "none"
    if (normal_class is None) != (anomaly_ratio is None):
        raise UsageError("--normal-class and --anomaly-ratio go together")
    if per_video and input_type != "video":
        raise UsageError("--per-video applies to video feature folders only")
    _check_table_options(input_type, categorical, drop, label_column, anomaly_values)
    default = input_path.with_name(input_path.name + ".per-video") if per_video else default_output(input_path, "features")
    output = Path(output or default)
    sources = (input_path, like, labels, model, annotations)
    if not per_video:
        output = art.check_output_path(output, sources)
    else:
        for source in sources:
            if source is not None and art.is_same_or_inside(output, source):
                raise OutputError(f"is also an input of this command ({source}), or inside it: choose another folder", output)
    params = {
        "input_type": input_type, "categorical": list(categorical), "drop": list(drop), "label_column": label_column,
        "anomaly_values": anomaly_values, "scale": scale, "like": str(like) if like else None,
    }
    if input_type in ("idx", "images", "video"):
        params.update(labels=str(labels) if labels else None, size=list(size), grayscale=grayscale,
                      model=str(model) if model else None, annotations=str(annotations) if annotations else None,
                      segment_frames=segment_frames, normal_class=normal_class, anomaly_ratio=anomaly_ratio, seed=seed)
    inputs = {"raw": {"path": str(input_path), "sha256": input_sha256(input_path)}}
    like_encoding = None
    if like:
        with art.open_artifact(like, "features") as f:
            like_encoding = art.read_json(f, "encoding")
            inputs["like"] = {"path": str(like), "fingerprint": f.attrs["fingerprint"]}
        if bool(like_encoding.get("array")) == (input_type == "table"):
            raise StaleError(f"{like} was made from {'a table' if not like_encoding.get('array') else 'arrays'}; this input is {input_type}", input_path)
    if skip_current and not per_video and existing_artifact_matches(output, "features", params, inputs):
        return _skipped(output)

    if input_type != "table":
        raw = _read_array_input(input_path, input_type, labels, size, grayscale, model, device, annotations, segment_frames)
        if normal_class is not None:
            raw = _one_class_subset(raw, normal_class, anomaly_ratio, seed, input_path)
        if per_video:
            return _write_per_video(raw, output, params, inputs, scale, compress)
        return _write_arrays(raw, output, params, inputs, scale, like_encoding, like, compress, progress)

    unseen: dict[str, int] = {}
    if like_encoding is not None:
        encoder = TabularEncoder.from_dict(like_encoding)
    else:
        encoder = TabularEncoder(categorical, drop, label_column, anomaly_values, scale)
        rows = 0
        for df in read_any_table(input_path, chunk_rows, text_encoding, drop):
            encoder.partial_fit(df, input_path)
            rows += len(df)
            progress("fitting encoding", rows, 0)
        encoder.finish_fit(input_path)

    # rows encoded at a time: a chunk of --chunk-rows rows times a wide one-hot encoding (float64
    # while it is built) must not take gigabytes
    rows_per_piece = max(1, (32 << 20) // max(1, len(encoder.feature_names_)))

    def table_chunks():
        for df in read_any_table(input_path, chunk_rows, text_encoding, encoder.drop):
            for start in range(0, len(df), rows_per_piece):
                piece = df.iloc[start : start + rows_per_piece]
                X_chunk, unseen_chunk = encoder.transform(piece, input_path)
                for column, count in unseen_chunk.items():
                    unseen[column] = unseen.get(column, 0) + count
                yield X_chunk, encoder.labels(piece, input_path)

    return write_features(output, table_chunks(), encoder.to_dict(), params, inputs, compress, progress, unseen)


def _check_table_options(input_type, categorical, drop, label_column, anomaly_values) -> None:
    """Options only a table can honour are refused for other inputs instead of being ignored,
    and --anomaly-values without --label-column (which would leave the label among the
    features) is refused."""
    if input_type != "table":
        given = [name for name, value in (("--categorical", categorical), ("--drop", drop), ("--label-column", label_column),
                                          ("--anomaly-values", anomaly_values)) if value]
        if given:
            raise UsageError(f"{', '.join(given)} apply to CSV/TSV tables only; this input is {input_type}")
    if anomaly_values and label_column is None:
        raise UsageError("--anomaly-values needs --label-column (else the label column would be encoded as a feature)")


def _read_array_input(path, input_type, labels, size, grayscale, model, device, annotations, segment_frames) -> dict:
    """{"X", "y", "ids", "extra": {name: array}, "notes": {...}} for the non-table inputs."""
    from deepuad import media
    from deepuad.tabular import load_array_file

    if input_type == "numpy":
        X, y = load_array_file(path)
        return {"X": X, "y": y, "ids": None, "extra": {}, "notes": {}}
    if input_type == "idx":
        X, class_label = media.read_mnist(path, labels)
        extra = {} if class_label is None else {"class_label": class_label}
        return {"X": X, "y": None, "ids": None, "extra": extra, "notes": {}}
    if input_type == "images":
        if model:
            folder = media.extract_image_folder(model, path, size=size, grayscale=grayscale, device=resolve_device(device))
        else:
            folder = media.read_image_folder(path, size=size, grayscale=grayscale)
        notes = {"skipped_images": len(folder.skipped)}
        if folder.skipped:
            notes["skipped_examples"] = [f"{name}: {why}" for name, why in folder.skipped[:5]]
            warnings.warn(f"{len(folder.skipped)} unreadable image(s) skipped, e.g. {folder.skipped[0][0]}: {folder.skipped[0][1]}")
        return {"X": folder.X, "y": None, "ids": folder.ids.astype(object),
                "extra": {"class_label": folder.class_label.astype(object)}, "notes": notes}
    videos = media.read_video_features(path)
    y = None
    notes = {"videos": len(set(videos.video.tolist()))}
    if annotations:
        intervals = media.read_ucf_annotations(annotations)
        names = list(dict.fromkeys(videos.video.tolist()))
        missing = [v for v in names if v not in intervals]
        if missing:
            raise DataError(f"no annotation for video(s) {', '.join(missing[:3])}", annotations)
        y = np.empty(len(videos.X), dtype=np.int8)
        for name in names:
            rows = np.flatnonzero(videos.video == name)
            y[rows] = media.segment_labels(len(rows), intervals[name], segment_frames)
    ids = np.array([f"{v}#{s}" for v, s in zip(videos.video, videos.segment)], dtype=object)
    return {"X": videos.X, "y": y, "ids": ids, "notes": notes,
            "extra": {"video": videos.video.astype(object), "segment": videos.segment}}


def _one_class_subset(raw: dict, normal_class, anomaly_ratio, seed, path) -> dict:
    """The paper's task: all of one class as normal plus the others sampled to anomaly_ratio."""
    from deepuad import media

    class_label = raw["extra"].get("class_label")
    if class_label is None:
        raise UsageError(f"--normal-class needs class labels, and {path} has none (pass --labels for IDX files)")
    try:
        rows, y = media.one_class_task(class_label, normal_class, anomaly_ratio, seed)
    except ValueError as error:
        raise UsageError(str(error)) from None
    subset = {k: (None if v is None else v[rows]) for k, v in raw.items() if k in ("X", "ids")}
    subset["ids"] = rows.astype(np.int64) if raw["ids"] is None else subset["ids"]  # rows of the original input
    return {**subset, "y": y, "extra": {k: v[rows] for k, v in raw["extra"].items()},
            "notes": {**raw["notes"], "task": {"normal_class": str(normal_class), "anomaly_ratio": anomaly_ratio, "seed": seed}}}


def _write_arrays(raw, output, params, inputs, scale, like_encoding, like, compress, progress) -> dict:
    from deepuad.tabular import ArrayScaler

    X = raw["X"]
    if like_encoding is not None:
        scaler = ArrayScaler.from_dict(like_encoding)
        if X.shape[1] != len(scaler.offset_):
            raise DataError(f"has {X.shape[1]} columns but {like} was fitted on {len(scaler.offset_)}", inputs["raw"]["path"])
    else:
        scaler = ArrayScaler(scale).fit(X)
    encoding = scaler.to_dict()
    encoding.update(feature_names=[f"x{i}" for i in range(X.shape[1])], input_type=params["input_type"])
    for key in ("size", "grayscale", "model"):
        if key in params:
            encoding[key] = params[key]
    summary = write_features(output, iter([(scaler.transform(X), raw["y"])]), encoding, params, inputs, compress, progress,
                             ids=raw["ids"], extra=raw["extra"])
    summary.update(raw["notes"])
    return summary


def _write_per_video(raw, folder: Path, params, inputs, scale, compress) -> dict:
    """One features file per video (the paper trains one model per video)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror}", folder) from None
    written = []
    videos = raw["extra"]["video"]
    for name in dict.fromkeys(videos.tolist()):
        rows = np.flatnonzero(videos == name)
        part = {"X": raw["X"][rows], "y": None if raw["y"] is None else raw["y"][rows], "ids": raw["ids"][rows],
                "extra": {k: v[rows] for k, v in raw["extra"].items()}, "notes": {}}
        summary = _write_arrays(part, folder / f"{name}.features.h5", {**params, "video": name}, inputs, scale, None, None, compress,
                                _no_progress)
        written.append(summary)
    return {"output": str(folder), "videos": len(written), "files": [w["output"] for w in written],
            "rows": int(sum(w["rows"] for w in written))}


def write_features(output, chunks, encoding: dict, params: dict, inputs: dict, compress=False, progress=_no_progress,
                   unseen: dict | None = None, ids=None, extra: dict | None = None) -> dict:
    """Stream (X_chunk, y_chunk) pairs into a features artifact; returns the summary.

    ``extra`` maps dataset names to whole arrays stored beside X (e.g. class_label, video)."""
    feature_names = encoding["feature_names"]
    n_rows, n_anomalies, has_y = 0, 0, None
    with art.write_artifact(output, "features", params, inputs) as f:
        width = len(feature_names)
        X_out = f.create_dataset(
            "X", shape=(0, width), maxshape=(None, width), dtype=np.float32,
            chunks=(max(1, min(16384, (1 << 20) // (4 * width))), width),  # ~1 MiB chunks
            **({"compression": "gzip", "compression_opts": 4, "shuffle": True} if compress else {}),
        )
        y_out = None
        for X_chunk, y_chunk in chunks:
            if X_chunk.shape[1] != width:
                raise DataError(f"encoded width {X_chunk.shape[1]} != {width}", inputs["raw"]["path"])
            if not np.isfinite(X_chunk).all():
                raise DataError("scaling produced non-finite values (values too large for float32?)", inputs["raw"]["path"])
            if has_y is None:
                has_y = y_chunk is not None
                if has_y:
                    y_out = f.create_dataset("y", shape=(0,), maxshape=(None,), dtype=np.int8, chunks=(65536,))
            X_out.resize(n_rows + len(X_chunk), axis=0)
            X_out[n_rows:] = X_chunk
            if has_y:
                y_out.resize(n_rows + len(X_chunk), axis=0)
                y_out[n_rows:] = y_chunk
                n_anomalies += int(np.sum(y_chunk))
            n_rows += len(X_chunk)
            progress("encoding rows", n_rows, 0)
        if n_rows == 0:
            raise DataError("no data rows", inputs["raw"]["path"])
        art.put(f, "feature_names", np.array(feature_names, dtype=object))
        art.put(f, "ids", np.arange(n_rows, dtype=np.int64) if ids is None else ids, chunked=True)
        for name, values in (extra or {}).items():
            art.put(f, name, values)
        art.put_json(f, "encoding", encoding, art.DESCRIPTIONS["encoding"])
        f.attrs["encoding_fingerprint"] = encoding_fingerprint(encoding)
        f.attrs["unseen_categories"] = json.dumps(unseen or {})
    summary = {"output": str(output), "rows": n_rows, "features": len(feature_names), "labels": bool(has_y)}
    if has_y:
        summary["anomalies"] = n_anomalies
    if unseen:
        summary["unseen_categories"] = unseen
    return summary


# =========================================================================== loading
def load_features(path, max_bytes: int = 8 << 30) -> dict:
    """X (in memory), y, fingerprints of a features artifact; DataError on NaN/inf or no rows."""
    with art.open_artifact(path, "features") as f:
        X = art.read_array(f, "X", max_bytes)
        y = art.read_array(f, "y") if "y" in f else None
        fingerprint = str(f.attrs["fingerprint"])
        encoding_fp = str(f.attrs.get("encoding_fingerprint", ""))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X is empty (shape {X.shape})", path)
    X = as_finite_float32(X, path)
    if y is not None and len(y) != len(X):
        raise InputError(f"y has {len(y)} entries but X has {len(X)} rows", path)
    return {"X": X, "y": y, "fingerprint": fingerprint, "encoding_fingerprint": encoding_fp}


def as_finite_float32(X, path, first_row: int = 0) -> np.ndarray:
    """X as float32, or DataError if it holds NaN, infinity, or a value beyond float32's range
    (|x| > 3.4e38: a float64 file whose values would turn into inf, and the scores into NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        X32 = np.asarray(X, dtype=np.float32)
    finite = np.isfinite(X32)
    if not finite.all():
        bad_rows = ~finite.all(axis=1) if X32.ndim == 2 else ~finite
        first = first_row + int(np.argmax(bad_rows))
        raise DataError(f"X has {int(bad_rows.sum())} row(s) with NaN or infinite values, or values beyond float32's "
                        f"range (first: row {first})", path)
    return X32


@contextlib.contextmanager
def features_for_clustering(path, streaming: bool):
    """X in memory, or (``streaming``) the open HDF5 dataset itself: gmm/kmeans with
    ``--fit-sample`` then read only their sample and assign all rows in chunks, so data larger
    than memory can be clustered. Either way NaN/inf is refused (checked chunk by chunk)."""
    if not streaming:
        yield load_features(path)
        return
    with art.open_artifact(path, "features") as f:
        X = f["X"]
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise DataError(f"X is empty (shape {X.shape})", path)
        _require_finite_rows(X, 0, X.shape[0], path)
        y = art.read_array(f, "y") if "y" in f else None
        yield {"X": X, "y": y, "fingerprint": str(f.attrs["fingerprint"])}


def _require_finite_rows(X, start: int, stop: int, path, chunk: int = 65536) -> None:
    """DataError unless rows [start, stop) of an on-disk X are finite, read chunk by chunk."""
    for first in range(start, stop, chunk):
        as_finite_float32(X[first : min(first + chunk, stop)], path, first)


# =========================================================================== cluster
def cluster(
    features_path,
    output=None,
    method="gmm",
    n_clusters=20,
    p0=35.0,
    percentile_over="samples",
    min_fraction=0.01,
    seed=0,
    method_options: dict | None = None,
    skip_current=False,
    progress: Progress = _no_progress,
) -> dict:
    """Initial clustering and selection C(X, p0) -> clusters artifact."""
    from deepuad.clustering import METHODS
    from deepuad.detector import initial_selection

    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 < p0 < 100:
        raise UsageError(f"--p0 must be in (0, 100), got {p0}")
    if n_clusters < 1:
        raise UsageError(f"--clusters must be >= 1, got {n_clusters}")
    _check_cluster_options(percentile_over, min_fraction, seed, method, method_options or {})
    output = art.check_output_path(output or default_output(features_path, "clusters"), [features_path])
    options = {k: v for k, v in (method_options or {}).items() if v is not None}
    params = {"method": method, "n_clusters": n_clusters, "p0": p0, "percentile_over": percentile_over,
              "min_fraction": min_fraction, "seed": seed, "method_options": options}
    if skip_current:
        inputs = {"features": {"path": str(features_path), "fingerprint": art.fingerprint_of(features_path)}}
        if existing_artifact_matches(output, "clusters", params, inputs):
            return _skipped(output)
    progress(f"clustering ({method})", 0, 1)
    with features_for_clustering(features_path, streaming=bool(options.get("fit_sample")) and method in ("gmm", "kmeans")) as features:
        X, y = features["X"], features["y"]
        if len(X) < 2:  # else scikit-learn's "Found array with 1 sample(s)" as the reason
            raise DataError(f"has {len(X)} row; clustering needs at least 2", features_path)
        try:
            selection = initial_selection(X, p0, method, n_clusters, percentile_over, min_fraction, seed, **options)
        except ValueError as error:
            raise DataError(f"clustering failed: {error}", features_path) from None
        n_rows = len(X)
    progress(f"clustering ({method})", 1, 1)
    if not np.isfinite(selection.threshold) or not np.isfinite(selection.variances[selection.sizes > 0]).all():
        raise DataError(f"clustering gave a variance threshold of {selection.threshold} (values too large?)", features_path)
    if selection.fallback:
        warnings.warn(
            f"the p0 rule selected fewer than {min_fraction:.0%} of the rows; added clusters in increasing variance "
            f"up to {len(selection.selected)} rows (recorded as fallback)"
        )
    inputs = {"features": {"path": str(features_path), "fingerprint": features["fingerprint"]}}
    with art.write_artifact(output, "clusters", params, inputs) as f:
        art.put(f, "assignment", selection.labels, chunked=True)
        art.put(f, "size", selection.sizes)
        art.put(f, "variance", selection.variances)
        art.put(f, "accepted", selection.accepted)
        art.put(f, "selected", selection.selected, chunked=True)
        f.attrs["threshold"] = selection.threshold
        f.attrs["fallback"] = selection.fallback
        f.attrs["n_rows"] = n_rows
        for name, value in (selection.extra or {}).items():
            if name == "variances":
                continue  # already stored as 'variance'
            if np.ndim(value) == 0:
                f.attrs[f"method_{name}"] = value
            else:
                art.put(f, f"method_data/{name}", np.asarray(value), f"{method} clustering: {name} per cluster")
        if y is not None:
            share = cluster_anomaly_share(selection.labels, y, len(selection.sizes))
            art.put(f, "diagnostics/anomaly_share", share, "share of y == 1 in each cluster (diagnostic only)")
            f.attrs["selected_anomaly_share"] = float(np.mean(y[selection.selected]))
    summary = {
        "output": str(output), "method": method, "rows": n_rows, "clusters": int((selection.sizes > 0).sum()),
        "accepted_clusters": int(selection.accepted.sum()), "selected": len(selection.selected),
        "threshold": selection.threshold, "fallback": selection.fallback,
        "unclustered": int((selection.labels < 0).sum()),
    }
    if "thres" in (selection.extra or {}):
        summary["thres"] = selection.extra["thres"]
    if y is not None:
        summary["selected_anomaly_share"] = float(np.mean(y[selection.selected]))
        summary["data_anomaly_share"] = float(np.mean(y))
    return summary


def _check_cluster_options(percentile_over, min_fraction, seed, method, method_options: dict) -> None:
    """UsageError (exit 2) before any work, instead of a "clustering failed" DataError (exit 4)
    from deep inside scikit-learn, or a silent success with a meaningless value."""
    from deepuad.selection import PERCENTILE_OVER

    if percentile_over not in PERCENTILE_OVER:
        raise UsageError(f"--percentile-over must be one of {', '.join(PERCENTILE_OVER)}, got {percentile_over!r}")
    if not 0 <= min_fraction < 1:
        raise UsageError(f"--min-fraction must be in [0, 1), got {min_fraction}")
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    covariance = method_options.get("covariance_type")
    if method == "gmm" and covariance is not None and covariance not in ("full", "tied", "diag", "spherical"):
        raise UsageError(f"--covariance must be one of full, tied, diag, spherical, got {covariance!r}")
    fit_sample = method_options.get("fit_sample")
    if fit_sample is not None and fit_sample < 2:
        raise UsageError(f"--fit-sample must be >= 2 rows, got {fit_sample}")


def cluster_anomaly_share(labels: np.ndarray, y: np.ndarray, n_clusters: int) -> np.ndarray:
    keep = labels >= 0
    counts = np.bincount(labels[keep], minlength=n_clusters)
    anomalies = np.bincount(labels[keep], weights=y[keep].astype(float), minlength=n_clusters)
    return np.where(counts > 0, anomalies / np.maximum(counts, 1), np.nan)


# =========================================================================== train
TRAIN_PARAM_NAMES = (
    "p0", "p", "r", "epochs", "batch_size", "lr", "layers", "activation", "loss", "reselect_clusters",
    "reselect_fit_sample", "percentile_over", "reselect_by", "tol", "min_fraction", "seed", "precision", "compile",
    "score", "n_neighbors", "reference_size",
)
# parameters that may differ when resuming: more epochs, another device or thread count
RESUME_MAY_CHANGE = ("epochs", "device", "threads", "processes")


def train(
    features_path,
    clusters_path,
    output=None,
    resume=False,
    force=False,
    device="auto",
    threads=None,
    skip_current=False,
    progress: Progress = _no_progress,
    **train_params,
) -> dict:
    """Algorithm 1 from the clusters artifact's initial selection -> model artifact
    (checkpointed at every re-selection, so ``resume=True`` continues a killed run)."""
    from deepuad.detector import DeepUAD
    from deepuad.distributed import World

    detector = DeepUAD(**train_params)
    try:
        detector.check_params()
    except ValueError as error:
        raise UsageError(str(error)) from None
    output = art.check_output_path(output or default_output(features_path, "model"), [features_path, clusters_path])
    world = World.from_environment(resolve_device(device))  # joins the torchrun process group, if any
    try:
        threads = set_threads(threads, world.local_size)
        detector.device = world.device
        with features_for_training(features_path, world) as features:
            return _train(detector, features, features_path, clusters_path, output, resume, force, threads, world,
                          skip_current, progress)
    finally:
        world.close()


@contextlib.contextmanager
def features_for_training(path, world):
    """X in memory; under torchrun the open HDF5 dataset instead, each rank checking its own row
    range for NaN/inf, so no process reads more than its share of the file."""
    if not world.distributed:
        yield load_features(path)
        return
    with art.open_artifact(path, "features") as f:
        X = f["X"]
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise DataError(f"X is empty or not a matrix (shape {X.shape})", path)
        _require_finite_rows(X, *world.block(X.shape[0]), path)
        y = art.read_array(f, "y") if "y" in f else None
        if y is not None and len(y) != X.shape[0]:
            raise InputError(f"y has {len(y)} entries but X has {X.shape[0]} rows", path)
        yield {"X": X, "y": y, "fingerprint": str(f.attrs["fingerprint"]),
               "encoding_fingerprint": str(f.attrs.get("encoding_fingerprint", ""))}


def _train(detector, features, features_path, clusters_path, output, resume, force, threads, world, skip_current,
           progress) -> dict:
    from deepuad.detector import DeepUAD
    from deepuad.metrics import ranking_metrics

    X, y = features["X"], features["y"]
    with art.open_artifact(clusters_path, "clusters") as f:
        art.require_made_from(f, "features", features_path, features["fingerprint"], force)
        selected = art.read_array(f, "selected").astype(np.int64)
        detector.p0 = art.params_of(f).get("p0", detector.p0)  # recorded for provenance; used by cluster only
        clusters_fingerprint = str(f.attrs["fingerprint"])
    if len(selected) == 0 or selected.min() < 0 or selected.max() >= len(X):
        raise InputError(f"'selected' is empty or has indices outside [0, {len(X)})", clusters_path)
    params = {name: getattr(detector, name) for name in TRAIN_PARAM_NAMES}
    params.update(layers=detector.layers if detector.layers == "auto" else list(detector.layers), device=detector.device,
                  threads=threads, processes=world.size)
    inputs = {
        "features": {"path": str(features_path), "fingerprint": features["fingerprint"]},
        "clusters": {"path": str(clusters_path), "fingerprint": clusters_fingerprint},
    }

    if skip_current:  # deepuad run: skip a complete model, resume a checkpoint, else start afresh
        status = existing_artifact_matches(output, "model", params, inputs)
        if status:
            return _skipped(output)
        resume = status is False
    resume_state, diagnostics = None, {}
    if resume and Path(output).exists():
        resume_state, diagnostics = _load_checkpoint(output, params, inputs, len(X), X.shape[1], force)

    def on_event(event: str, det: DeepUAD, info: dict) -> None:
        if event == "epoch":
            if not np.isfinite(info["loss"]):  # else the next re-selection blames the features ("contains NaN")
                raise DataError(_diverged(det, f"the training loss is {info['loss']} after epoch {info['epoch']}"))
            progress("training", info["epoch"], det.epochs)
            return
        iteration = info["iteration"]
        if y is not None:  # diagnostics from labels the algorithm never sees
            diagnostics[iteration.iteration] = _label_diagnostics(y, info["scores"], iteration.selected)
        _write_model(output, det, params, inputs, features["encoding_fingerprint"], diagnostics, len(X), complete=False)

    if y is not None and 0 not in diagnostics:
        diagnostics[0] = {"selected_anomaly_share": float(np.mean(y[np.sort(selected)]))}
    try:  # rank 0 alone reports progress and writes checkpoints; the others only compute
        detector.fit(X, initial=selected, callback=on_event if world.is_root else None, resume_state=resume_state,
                     world=world)
    except ValueError as error:
        raise DataError(str(error), features_path) from None
    if not np.isfinite(detector.decision_scores_).all():
        raise DataError(_diverged(detector, "the trained model gives NaN or infinite scores"))
    final = {}
    if y is not None:
        final = ranking_metrics(y, detector.decision_scores_)
    if world.is_root:
        _write_model(output, detector, params, inputs, features["encoding_fingerprint"], diagnostics, len(X),
                     complete=True, final_metrics=final)
    world.barrier()  # no rank exits (and so ends the torchrun job) before the model is written
    last = detector.iterations_[-1]
    summary = {
        "output": str(output), "rows": len(X), "epochs": detector.epoch_, "stop_reason": detector.stop_reason_,
        "reselections": len(detector.iterations_) - 1, "selected": last.n_selected, "last_changed": last.n_changed,
        "device": detector.device, "threads": threads, "processes": world.size, "resumed": resume_state is not None,
    }
    summary.update({f"train_{k}": v for k, v in final.items()})
    return summary


def _diverged(detector, what: str) -> str:
    return (f"training diverged: {what} (learning rate --lr {detector.lr:g}; try a smaller one); "
            "no model was written")


def _label_diagnostics(y: np.ndarray, scores: np.ndarray, selected: np.ndarray) -> dict:
    from deepuad.metrics import binary_metrics

    share = float(np.mean(y))
    flagged = scores > np.quantile(scores, 1 - share) if 0 < share < 1 else np.zeros(len(y), bool)
    metrics = binary_metrics(y, scores, flagged)
    metrics["selected_anomaly_share"] = float(np.mean(y[selected]))
    return metrics


def _write_model(path, detector, params, inputs, encoding_fp, diagnostics, n_rows, complete, final_metrics=None):
    arrays, state = detector.get_state()
    with art.write_artifact(path, "model", params, inputs) as f:
        for name, values in arrays.items():
            if name.startswith("iterations/"):  # sorted indices compress well: keep checkpoints small
                f.create_dataset(name, data=values, compression="gzip", compression_opts=1, shuffle=True)
            else:
                f.create_dataset(name, data=values)
        for record in state["iterations"]:
            group = f[f"iterations/{record['iteration']}"]
            group.attrs.update({k: v for k, v in record.items()})
            group.attrs["n_selected"] = len(group["selected"])
            for key, value in diagnostics.get(record["iteration"], {}).items():
                group.attrs[key] = np.nan if value is None else value
        f.attrs["architecture"] = json.dumps(
            {"n_features": int(detector.model_.encoder[0].in_features), "layers": list(detector.layers_), "activation": detector.activation}
        )
        f.attrs["state"] = json.dumps({k: v for k, v in state.items() if k != "iterations"})
        f.attrs["iterations"] = json.dumps(state["iterations"])
        f.attrs["n_rows"] = n_rows
        f.attrs["encoding_fingerprint"] = encoding_fp
        f.attrs["complete"] = complete
        f.attrs["stop_reason"] = detector.stop_reason_ if complete else "interrupted (checkpoint)"
        f.attrs["final_metrics"] = json.dumps(final_metrics or {})
        if complete:  # the share of anomalies estimated from the scores: score's default --contamination
            f.attrs["contamination_estimate"] = float(detector.contamination_)


def _load_checkpoint(path, params, inputs, n_rows, n_features, force):
    with art.open_artifact(path, "model") as f:
        old = art.params_of(f)
        changed = sorted(k for k in set(old) | set(params) if k not in RESUME_MAY_CHANGE and old.get(k) != params.get(k))
        if changed and not force:
            raise StaleError(f"cannot --resume: parameters differ from the checkpoint ({', '.join(changed)})", path)
        recorded = art.inputs_of(f)
        for role in ("features", "clusters"):
            if recorded.get(role, {}).get("fingerprint") != inputs[role]["fingerprint"] and not force:
                raise StaleError(f"cannot --resume: the checkpoint was made from a different {role} file", path)
        if int(f.attrs["n_rows"]) != n_rows:
            raise StaleError(f"cannot --resume: checkpoint has {int(f.attrs['n_rows'])} rows, features have {n_rows}", path)
        architecture = art.attr_json(f, "architecture")
        if architecture.get("n_features") != n_features:
            raise StaleError(f"cannot --resume: the checkpoint expects {architecture.get('n_features')} features, not {n_features}", path)
        _check_weight_shapes(f, path, architecture)
        arrays, state, diagnostics = _read_model_state(f)
    _check_resume_state(arrays, state, params, n_rows, n_features, path)
    return (arrays, state), diagnostics


def _check_resume_state(arrays: dict, state: dict, params: dict, n_rows: int, n_features: int, path) -> None:
    """InputError naming the checkpoint for anything its restore or the training after it would
    trip over (empty or out-of-range selections, a broken optimiser or RNG state, NaN weights),
    instead of an internal error or a NaN loss blamed on the features."""
    from deepuad.detector import DeepUAD

    for record in state["iterations"]:
        selected = arrays.get(f"iterations/{record['iteration']}/selected")
        if selected is None or len(selected) == 0 or selected.min() < 0 or selected.max() >= n_rows:
            raise InputError(f"cannot --resume: the selection of iteration {record['iteration']} is empty or has row "
                             f"indices outside [0, {n_rows}) (corrupt?)", path)
    if not (isinstance(state.get("epoch"), int) and 0 <= state["epoch"]):
        raise InputError("cannot --resume: the checkpoint's epoch is not a count (corrupt?)", path)
    for name, values in arrays.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise InputError(f"cannot --resume: dataset '{name}' holds NaN or infinite values (corrupt?)", path)
    probe = DeepUAD(**{k: params[k] for k in TRAIN_PARAM_NAMES if k in params}, device="cpu")
    try:
        probe._restore((arrays, state), n_features, n_rows)
        for group in probe.optimizer_.param_groups:
            if not all(np.isfinite(float(group[key])) for key in ("lr", "eps", "weight_decay")):
                raise ValueError("optimizer settings are not finite numbers")
            for parameter in group["params"]:  # Adam's moments: torch does not check their shapes
                for key, value in probe.optimizer_.state.get(parameter, {}).items():
                    if key != "step" and tuple(value.shape) != tuple(parameter.shape):
                        raise ValueError(f"optimizer '{key}' has shape {tuple(value.shape)}, its weight {tuple(parameter.shape)}")
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as error:
        raise InputError(f"cannot --resume: the checkpoint's training state is unusable (corrupt?): "
                         f"{type(error).__name__}: {error}"[:400], path) from None


def _check_weight_shapes(f: h5py.File, path, architecture: dict) -> None:
    """InputError unless the stored weights have exactly the shapes the architecture declares.
    Checked on the file's metadata before the network is built, so that a small file declaring
    20,000-wide layers cannot make deepuad allocate gigabytes (the network is built on PyTorch's
    "meta" device, which allocates nothing)."""
    import torch

    from deepuad.autoencoder import Autoencoder

    layers = architecture["layers"]  # at most art.MAX_LAYERS of art.MAX_WIDTH: checked by open_artifact
    try:
        with torch.device("meta"):
            expected = {f"weights/{name}": tuple(value.shape) for name, value in
                        Autoencoder(architecture["n_features"], tuple(layers), architecture["activation"]).state_dict().items()}
    except ValueError as error:
        raise InputError(f"attribute 'architecture' does not describe a model (corrupt?): {error}", path) from None
    stored = {name: tuple(f[name].shape) for name in _dataset_names(f, "weights/")}
    if stored != expected:
        wrong = sorted(set(stored.items()) ^ set(expected.items()))[:1]
        raise InputError(f"model weights are inconsistent with its architecture (corrupt?): {wrong[0][0]} "
                         f"{'is ' + str(stored.get(wrong[0][0])) if wrong[0][0] in stored else 'is missing'}, "
                         f"architecture needs {expected.get(wrong[0][0], 'none')}", path)


def _dataset_names(f: h5py.File, prefix: str) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and name.startswith(prefix) else None)
    return names


def _read_model_state(f: h5py.File):
    arrays: dict[str, np.ndarray] = {}

    def collect(name, obj):
        if isinstance(obj, h5py.Dataset):
            arrays[name] = art.read_array(f, name)

    f.visititems(collect)
    state = art.attr_json(f, "state")
    state["iterations"] = art.attr_json(f, "iterations")
    diagnostics = {}
    for record in state["iterations"]:
        group = f[f"iterations/{record['iteration']}"]
        keys = ("auroc", "auprc", "f1", "precision", "recall", "anomaly_share", "selected_anomaly_share")
        diagnostics[record["iteration"]] = {k: float(group.attrs[k]) for k in keys if k in group.attrs}
    return arrays, state, diagnostics


def load_model(path, device="cpu"):
    """(DeepUAD ready to score, artifact attributes) from a model artifact; never unpickles."""
    from deepuad.detector import DeepUAD

    with art.open_artifact(path, "model") as f:
        params = art.params_of(f)
        architecture = art.attr_json(f, "architecture")
        _check_weight_shapes(f, path, architecture)
        arrays, state, _ = _read_model_state(f)
        meta = {
            "fingerprint": str(f.attrs["fingerprint"]), "encoding_fingerprint": str(f.attrs.get("encoding_fingerprint", "")),
            "complete": bool(f.attrs.get("complete", False)), "n_rows": int(f.attrs["n_rows"]), "params": params,
            "architecture": architecture,
        }
    for name, values in arrays.items():
        if name.startswith("weights/") and not np.isfinite(values).all():
            raise DataError(f"dataset '{name}' holds NaN or infinite weights; its scores would not be numbers", path)
    kwargs = {k: params[k] for k in TRAIN_PARAM_NAMES if k in params}
    kwargs.setdefault("score", "cosine")  # a model made before the combined score scores as it always did
    detector = DeepUAD(**kwargs, device=device)
    detector.layers, detector.activation = tuple(architecture["layers"]), architecture["activation"]
    try:
        detector._restore((arrays, state), int(architecture["n_features"]), meta["n_rows"], with_optimizer=False)
    except (KeyError, ValueError, RuntimeError) as error:
        raise InputError(f"model weights are inconsistent with its architecture (corrupt?): {error}", path) from None
    return detector, meta


# =========================================================================== score
def _check_threshold_options(contamination, threshold) -> None:
    if contamination is not None and threshold is not None:
        raise UsageError("give --contamination or --threshold, not both")
    if contamination is not None and not 0 < contamination <= 0.5:
        raise UsageError(f"--contamination must be in (0, 0.5], got {contamination}")
    if threshold is not None and not np.isfinite(threshold):
        raise UsageError(f"--threshold must be a finite number, got {threshold}")


def score(
    model_path,
    features_path,
    output=None,
    contamination=None,
    threshold=None,
    force=False,
    device="auto",
    threads=None,
    batch_rows=16384,
    shard=None,
    skip_current=False,
    progress: Progress = _no_progress,
) -> dict:
    """h(x) for every row of a features artifact, streamed in chunks -> scores artifact. With
    ``shard=(i, n)`` only shard i's rows (``art.shard_rows``) -> scores_shard artifact, which
    merge_scores joins with the other n - 1 into the scores artifact this would have written."""
    _check_threshold_options(contamination, threshold)
    if batch_rows < 1:
        raise UsageError(f"--batch-rows must be >= 1, got {batch_rows}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise UsageError(f"--shard must be I/N with 0 <= I < N, got {shard[0]}/{shard[1]}")
    suffix = "scores" if shard is None else f"scores.shard-{shard[0]}-of-{shard[1]}"
    output = art.check_output_path(output or default_output(features_path, suffix), [model_path, features_path])
    set_threads(threads)
    detector, model_meta = load_model(model_path, resolve_device(device))
    if not model_meta["complete"] and not hasattr(detector, "score_parts_") and detector.score != "cosine":
        raise InputError("is a checkpoint of an unfinished training run (no scorer yet): finish it with 'deepuad train --resume'",
                         model_path)
    if contamination is None and threshold is None:
        # the share estimated from the training scores (models from before it: p/100); recorded in a shard too, so
        # merge-scores needs no model
        contamination = getattr(detector, "contamination_", detector.p / 100)
    with art.open_artifact(features_path, "features") as f:
        features_fp = str(f.attrs["fingerprint"])
        if str(f.attrs.get("encoding_fingerprint", "")) != model_meta["encoding_fingerprint"] and not force:
            raise StaleError(
                f"is encoded differently from the data {model_path} was trained on; re-extract it with "
                "'deepuad extract NEW --like TRAINING.features.h5' or pass --force", features_path)
        X = f["X"]
        n_rows, width = X.shape
        if width != model_meta["architecture"]["n_features"]:
            raise DataError(f"has {width} features but the model expects {model_meta['architecture']['n_features']}", features_path)
        if n_rows == 0:
            raise DataError("has no rows", features_path)
        params = {"contamination": contamination, "threshold": threshold, "device": detector.device, "batch_rows": batch_rows}
        inputs = {"model": {"path": str(model_path), "fingerprint": model_meta["fingerprint"]},
                  "features": {"path": str(features_path), "fingerprint": features_fp}}
        start, stop = (0, n_rows) if shard is None else art.shard_rows(n_rows, batch_rows, *shard)
        if shard is not None:
            params["shard"] = list(shard)
        if skip_current and existing_artifact_matches(output, "scores" if shard is None else "scores_shard", params, inputs):
            return _skipped(output)
        y = art.read_array(f, "y", rows=slice(start, stop)) if "y" in f else None

        def chunks():
            # batch by batch from ``start``, which is a multiple of batch_rows: a shard's rows are
            # scored in exactly the batches of an unsharded run (see art.shard_rows)
            for begin in range(start, stop, batch_rows):
                end = min(begin + batch_rows, stop)
                try:
                    chunk = X[begin:end]
                except (OSError, ValueError) as error:
                    raise InputError(f"X unreadable at rows {begin}+ (corrupt?): {error}", features_path) from None
                chunk = as_finite_float32(chunk, features_path, begin)
                values = detector.decision_function(chunk, batch_size=batch_rows)
                if not np.isfinite(values).all():  # finite weights and inputs can still overflow together
                    raise DataError(f"scoring rows {begin}..{end - 1} with {model_path} gave NaN or infinite scores "
                                    f"(largest |x| in them: {float(np.abs(chunk).max()):.3g}; values too large for this model?)",
                                    features_path)
                yield begin - start, values

        if shard is None:
            return write_scores(output, params, inputs, n_rows, chunks(), y, contamination, threshold, progress)
        return _write_shard(output, params, inputs, chunks(), y, shard, (start, stop), n_rows, batch_rows, progress)


def require_finite_scores(values: np.ndarray, first_row: int, inputs: dict) -> None:
    """DataError for NaN or infinite scores: the last guard before any writer stores them, so
    that no command ends with exit 0 and scores (or a threshold, or metrics) that are not numbers."""
    finite = np.isfinite(values)
    if not finite.all():
        source = inputs.get("features", {}).get("path")
        raise DataError(f"{int((~finite).sum())} score(s) are NaN or infinite (first: row {first_row + int(np.argmin(finite))}); "
                        "nothing was written", source)


def read_finite_scores(values: np.ndarray, path) -> np.ndarray:
    """Scores read from an artifact, or DataError naming it if any is NaN or infinite."""
    finite = np.isfinite(values)
    if not finite.all():
        raise DataError(f"holds {int((~finite).sum())} NaN or infinite score(s) (first: row {int(np.argmin(finite))}); "
                        "metrics over them would mean nothing", path)
    return values


def _score_dataset(out: h5py.File, n_rows: int) -> h5py.Dataset:
    """The ``score`` dataset, filled chunk by chunk by the caller."""
    return out.create_dataset("score", shape=(n_rows,), dtype=np.float32, chunks=(min(n_rows, 65536),) if n_rows else None)


def write_scores(output, params: dict, inputs: dict, n_rows: int, chunks, y, contamination, threshold,
                 progress: Progress = _no_progress, description: str = "scoring") -> dict:
    """The one writer of scores artifacts (score, merge-scores, baseline): stream the
    (first row, float32 scores) ``chunks`` into the file, then derive the threshold (given, else
    the 1 - ``contamination`` quantile), is_anomaly and, with labels ``y``, the metrics. The same
    scores, y and options give the same datasets and attributes whichever command computed them."""
    from deepuad.metrics import binary_metrics

    # the scores go to the output chunk by chunk as they come; the float32 copy kept in memory
    # (4 bytes a row) is what the contamination threshold and the metrics need
    scores = np.empty(n_rows, dtype=np.float32)
    with art.write_artifact(output, "scores", params, inputs) as out:
        stored = _score_dataset(out, n_rows)
        done = 0
        for start, values in chunks:
            require_finite_scores(values, start, inputs)
            scores[start : start + len(values)] = values
            stored[start : start + len(values)] = scores[start : start + len(values)]
            done += len(values)
            progress(description, done, n_rows)
        if done != n_rows:  # the callers cover every row once; np.empty's garbage must never be written
            raise RuntimeError(f"write_scores got {done} scores for {n_rows} rows")
        if threshold is None:
            # on the float32 scores themselves: a float64 copy of 10M rows would cost 80 MB more
            threshold = float(np.quantile(scores, 1.0 - contamination))
        if not np.isfinite(threshold):  # a detector's own threshold (baseline) is not checked elsewhere
            raise DataError(f"the threshold is {threshold}, not a number; nothing was written", inputs.get("features", {}).get("path"))
        is_anomaly = (scores > threshold).astype(np.int8)
        metrics = binary_metrics(y, scores, is_anomaly) if y is not None else {}
        art.put(out, "is_anomaly", is_anomaly, chunked=True)
        if y is not None:
            art.put(out, "y", y, chunked=True)
        out.attrs["threshold"] = float(threshold)
        out.attrs["contamination"] = np.nan if contamination is None else contamination
        out.attrs["metrics"] = json.dumps(metrics)
    summary = {"output": str(output), "rows": n_rows, "threshold": float(threshold), "anomalies_flagged": int(is_anomaly.sum())}
    summary.update(metrics)
    return summary


def _write_shard(output, params, inputs, chunks, y, shard, rows, n_rows_total, batch_rows, progress) -> dict:
    """A scores_shard artifact: the scores (and y) of rows [start, stop) and where they belong.
    No threshold, is_anomaly or metrics: those need every row, and merge-scores derives them."""
    (index, count), (start, stop) = shard, rows
    with art.write_artifact(output, "scores_shard", params, inputs) as out:
        stored = _score_dataset(out, stop - start)
        done = 0
        for begin, values in chunks:
            require_finite_scores(values, begin, inputs)
            stored[begin : begin + len(values)] = values
            done += len(values)
            progress(f"scoring shard {index}/{count}", done, stop - start)
        if y is not None:
            art.put(out, "y", y, chunked=True)
        out.attrs.update(shard_index=index, shard_count=count, row_start=start, row_stop=stop, n_rows_total=n_rows_total,
                         batch_rows=batch_rows)
    return {"output": str(output), "shard": f"{index}/{count}", "rows": stop - start, "row_start": start, "row_stop": stop,
            "rows_total": n_rows_total}


def merge_scores(shard_paths, output=None, contamination=None, threshold=None, progress: Progress = _no_progress) -> dict:
    """The scores_shard artifacts of one ``score --shard I/N`` run -> the scores artifact that
    ``score`` writes for all rows (same datasets, threshold, metrics and inputs). Every shard's
    attributes (and y, a byte a row) are read and checked first, so a missing shard, a duplicate
    or a shard of another run is refused before anything is written; then the scores are
    streamed into the output one shard at a time."""
    _check_threshold_options(contamination, threshold)
    if not shard_paths:
        raise UsageError("give the shard files to merge")
    if output is not None:
        output = art.check_output_path(output, shard_paths)
    shards = [_read_shard_header(path) for path in shard_paths]
    first = shards[0]
    for shard in shards[1:]:
        _require_same_run(shard, first)
    by_index: dict[int, dict] = {}
    for shard in shards:
        if shard["index"] in by_index:
            raise StaleError(f"is shard {shard['index']} of {shard['count']}, as is {by_index[shard['index']]['path']}; "
                             "give each shard once", shard["path"])
        by_index[shard["index"]] = shard
    count = first["count"]
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise InputError(f"shard(s) {', '.join(map(str, missing))} of {count} missing (given: {', '.join(map(str, sorted(by_index)))}); "
                         "merge-scores needs every shard of the run", first["path"])
    ordered = [by_index[i] for i in range(count)]
    if contamination is None and threshold is None:  # the options the shards were scored with
        for shard in shards[1:]:
            if (shard["contamination"], shard["threshold"]) != (first["contamination"], first["threshold"]):
                raise StaleError(f"was scored with other --contamination/--threshold options than {first['path']}; "
                                 "pass --contamination or --threshold to merge-scores", shard["path"])
        contamination, threshold = first["contamination"], first["threshold"]
    output = output or art.check_output_path(default_output(ordered[0]["path"], "scores"), shard_paths)
    n_rows = first["n_rows_total"]
    params = {"contamination": contamination, "threshold": threshold, "device": ",".join(sorted({s["device"] for s in shards})),
              "batch_rows": first["batch_rows"], "shards": count}
    inputs = {role: ordered[0]["inputs"][role] for role in ("model", "features")}
    y = np.concatenate([shard["y"] for shard in ordered]) if first["y"] is not None else None

    def chunks():
        for shard in ordered:
            with art.open_artifact(shard["path"], "scores_shard") as f:
                values = art.read_array(f, "score")
            if len(values) != shard["row_stop"] - shard["row_start"]:  # rewritten since it was checked
                raise InputError("changed while merging", shard["path"])
            read_finite_scores(values, shard["path"])
            yield shard["row_start"], values

    summary = write_scores(output, params, inputs, n_rows, chunks(), y, contamination, threshold, progress, "merging shards")
    summary["shards"] = count
    return summary


def _read_shard_header(path) -> dict:
    """Everything merge_scores checks of one shard: where its rows belong, which run made it, y."""
    with art.open_artifact(path, "scores_shard") as f:
        header = {name: int(f.attrs[attr]) for name, attr in (
            ("index", "shard_index"), ("count", "shard_count"), ("row_start", "row_start"), ("row_stop", "row_stop"),
            ("n_rows_total", "n_rows_total"), ("batch_rows", "batch_rows"))}
        params, inputs = art.params_of(f), art.inputs_of(f)
        y = art.read_array(f, "y") if "y" in f else None
    for role in ("model", "features"):
        if not (isinstance(inputs.get(role), dict) and isinstance(inputs[role].get("fingerprint"), str)):
            raise InputError(f"inputs do not name the {role} it was scored with (corrupt?)", path)
    contamination, threshold = params.get("contamination"), params.get("threshold")
    number = (int, float)
    valid = (threshold is None and isinstance(contamination, number) and 0 < contamination <= 0.5) or (
        contamination is None and isinstance(threshold, number) and np.isfinite(threshold))
    if not valid or isinstance(contamination, bool) or isinstance(threshold, bool):
        raise InputError("params hold no valid contamination or threshold (corrupt?)", path)
    return {**header, "path": str(path), "inputs": inputs, "contamination": contamination, "threshold": threshold,
            "device": str(params.get("device")), "y": y}


def _require_same_run(shard: dict, first: dict) -> None:
    """StaleError unless ``shard`` comes from the same scoring run (model, features, N) as ``first``."""
    for role in ("model", "features"):
        theirs, ours = shard["inputs"][role]["fingerprint"], first["inputs"][role]["fingerprint"]
        if theirs != ours:
            raise StaleError(f"was scored with a different {role} than {first['path']} (fingerprint {theirs[:12]} vs {ours[:12]}); "
                             "merge the shards of one run", shard["path"])
    for key, what in (("count", "shard count"), ("n_rows_total", "row count"), ("batch_rows", "batch size")):
        if shard[key] != first[key]:
            raise StaleError(f"has {what} {shard[key]} but {first['path']} has {first[key]}; merge the shards of one run "
                             "(same --shard N and --batch-rows)", shard["path"])
    if (shard["y"] is None) != (first["y"] is None):
        raise InputError(f"{'has' if shard['y'] is not None else 'has no'} labels (y) unlike {first['path']} (corrupt?)", shard["path"])


# =========================================================================== inspect
def describe(path) -> dict:
    """Everything a person needs to judge an artifact, as a JSON-able dict."""
    with art.open_artifact(path) as f:
        kind = str(f.attrs["deepuad_kind"])
        info = {
            "path": str(path), "kind": kind, "schema_version": int(f.attrs["deepuad_schema_version"]),
            "deepuad_version": str(f.attrs.get("deepuad_version", "")), "created": str(f.attrs.get("created", "")),
            "fingerprint": str(f.attrs.get("fingerprint", "")), "params": art.params_of(f), "inputs": art.inputs_of(f),
            "datasets": [
                {"name": name, "shape": list(ds.shape), "dtype": str(ds.dtype), "description": str(ds.attrs.get("description", ""))}
                for name, ds in art._datasets(f) if not name.startswith(("weights/", "optimizer/", "iterations/"))
            ],
        }
        if kind == "features":
            info["summary"] = {"rows": f["X"].shape[0], "features": f["X"].shape[1], "has_labels": "y" in f,
                               "unseen_categories": art.attr_json(f, "unseen_categories") if "unseen_categories" in f.attrs else {}}
            if "y" in f and f["y"].shape[0]:  # no mean of an empty y: a RuntimeWarning and NaN
                info["summary"]["anomaly_share"] = float(np.mean(art.read_array(f, "y")))
        elif kind == "clusters":
            sizes, variances = art.read_array(f, "size"), art.read_array(f, "variance")
            accepted = art.read_array(f, "accepted")
            share = art.read_array(f, "diagnostics/anomaly_share") if "diagnostics/anomaly_share" in f else None
            order = np.argsort(variances, kind="stable")
            info["clusters"] = [
                {"cluster": int(k), "size": int(sizes[k]), "variance": float(variances[k]), "accepted": bool(accepted[k]),
                 **({"anomaly_share": float(share[k])} if share is not None else {})}
                for k in order if sizes[k] > 0
            ]
            info["summary"] = {"threshold": finite_threshold(f, path), "selected": int(f["selected"].shape[0]),
                               "rows": int(f.attrs["n_rows"]), "fallback": bool(f.attrs["fallback"]),
                               "unclustered": int(np.sum(art.read_array(f, "assignment") < 0))}
            if "selected_anomaly_share" in f.attrs:
                info["summary"]["selected_anomaly_share"] = float(f.attrs["selected_anomaly_share"])
        elif kind == "model":
            info["architecture"] = art.attr_json(f, "architecture")
            info["iterations"] = []
            for record in art.attr_json(f, "iterations"):
                group = f[f"iterations/{record['iteration']}"]
                row = {k: (v.item() if hasattr(v, "item") else v) for k, v in group.attrs.items()}
                info["iterations"].append(row)
            info["summary"] = {"complete": bool(f.attrs["complete"]), "stop_reason": str(f.attrs["stop_reason"]),
                               "epochs": int(art.attr_json(f, "state")["epoch"]), "rows": int(f.attrs["n_rows"]),
                               "score": art.params_of(f).get("score", "cosine"),
                               **({"contamination_estimate": float(f.attrs["contamination_estimate"])}
                                  if "contamination_estimate" in f.attrs else {}),
                               **{f"train_{k}": v for k, v in art.attr_json(f, "final_metrics").items()}}
        elif kind == "scores":
            scores = read_finite_scores(art.read_array(f, "score"), path)
            info["summary"] = {"rows": len(scores), "threshold": finite_threshold(f, path),
                               "flagged": int(np.sum(art.read_array(f, "is_anomaly"))),
                               "score_min": float(scores.min()), "score_median": float(np.median(scores)),
                               "score_max": float(scores.max()), **art.attr_json(f, "metrics")}
        elif kind == "scores_shard":
            scores = read_finite_scores(art.read_array(f, "score"), path)
            info["summary"] = {"shard": f"{int(f.attrs['shard_index'])}/{int(f.attrs['shard_count'])}", "rows": len(scores),
                               "row_start": int(f.attrs["row_start"]), "row_stop": int(f.attrs["row_stop"]),
                               "rows_total": int(f.attrs["n_rows_total"]), "batch_rows": int(f.attrs["batch_rows"]),
                               "has_labels": "y" in f}
            if len(scores):  # a shard beyond the last scoring batch is empty
                info["summary"].update(score_min=float(scores.min()), score_median=float(np.median(scores)),
                                       score_max=float(scores.max()))
    return info


def finite_threshold(f: h5py.File, path) -> float:
    """An artifact's threshold attribute, or DataError naming the file if it is not a number."""
    threshold = float(f.attrs["threshold"])
    if not np.isfinite(threshold):
        raise DataError(f"has threshold {threshold}, not a number", path)
    return threshold


# =========================================================================== evaluate
def evaluate(scores_path, labels_path=None, model_path=None, plots_dir=None, progress: Progress = _no_progress) -> dict:
    """Metrics of a scores artifact against ground truth (from the scores file itself, or the
    ``y`` of a features file), and optionally PNG plots plus metrics.json in ``plots_dir``."""
    from deepuad.metrics import binary_metrics

    with art.open_artifact(scores_path, "scores") as f:
        scores, is_anomaly = read_finite_scores(art.read_array(f, "score"), scores_path), art.read_array(f, "is_anomaly")
        y = art.read_array(f, "y") if "y" in f else None
        threshold = finite_threshold(f, scores_path)
        inputs = art.inputs_of(f)
    source = str(scores_path)
    features_path = labels_path or inputs.get("features", {}).get("path")
    extra = {}
    if labels_path is not None or (features_path and Path(features_path).exists()):
        try:
            with art.open_artifact(features_path, "features") as f:
                if labels_path is not None:
                    if "y" not in f:
                        raise DataError("has no labels (y)", labels_path)
                    y, source = art.read_array(f, "y"), str(labels_path)
                extra = {name: art.read_array(f, name) for name in ("video",) if name in f}
        except InputError:
            if labels_path is not None:
                raise
    if y is not None and len(y) != len(scores):
        raise DataError(f"has {len(y)} labels but {scores_path} has {len(scores)} scores", source)
    summary: dict = {"scores": str(scores_path), "rows": len(scores), "threshold": threshold,
                     "flagged": int(is_anomaly.sum()), "labels_from": source if y is not None else None}
    if y is not None:
        summary.update(binary_metrics(y, scores, is_anomaly))
    if plots_dir is None:
        return summary
    from deepuad import plots

    plots_dir = Path(plots_dir)
    model_path = model_path or inputs.get("model", {}).get("path")
    for source in (scores_path, labels_path, model_path, features_path):
        # evaluate writes metrics.json and *.png there: an input with such a name would be replaced
        if source and (Path(source).name == "metrics.json" or Path(source).suffix.lower() == ".png") \
                and art.is_same_or_inside(Path(source), plots_dir):
            raise OutputError(f"holds {source}, an input of this command that the plots would replace; choose another folder",
                              plots_dir)
    try:
        plots_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror}", plots_dir) from None
    written = [plots.score_histogram(scores, y, threshold, plots_dir)]
    if y is not None and len(np.unique(y)) == 2:
        written += plots.roc_pr_curves(y, scores, plots_dir)
    if model_path and Path(model_path).exists():
        written.append(plots.iteration_curves(describe(model_path)["iterations"], plots_dir))
    if "video" in extra:
        videos = np.asarray([v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in extra["video"]])
        for name in dict.fromkeys(videos.tolist()):
            rows = np.flatnonzero(videos == name)
            written.append(plots.video_scores(name, scores[rows], None if y is None else y[rows], plots_dir))
    summary["plots"] = written
    text = json.dumps(summary, indent=2, sort_keys=True, default=str, allow_nan=False)  # metrics are finite or None
    art.write_file_atomically(plots_dir / "metrics.json", lambda handle: handle.write(text.encode()))
    return summary


# =========================================================================== baseline
def baseline(
    features_path,
    method="iforest",
    score_features=None,
    output=None,
    contamination=0.1,
    seed=0,
    epochs=None,
    batch_size=1024,
    lr=None,
    layers=(60, 30, 10),
    activation="tanh",
    max_train_samples=10000,
    device="auto",
    threads=None,
    progress: Progress = _no_progress,
) -> dict:
    """Fit a baseline detector on one features file, score another (default: the same) and write
    a scores artifact in the same schema as ``score``, so evaluate and plots work on it."""
    from deepuad.baselines import BASELINES

    if method not in BASELINES:
        raise UsageError(f"--method must be one of {', '.join(BASELINES)}, got {method!r}")
    if not 0 < contamination <= 0.5:
        raise UsageError(f"--contamination must be in (0, 0.5], got {contamination}")
    if epochs is not None and epochs < 1:  # else the detector's "r must be >= 1", reported as a data error
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    if lr is not None and not (lr > 0 and np.isfinite(lr)):
        raise UsageError(f"--lr must be a positive number, got {lr}")
    score_features = score_features or features_path
    output = art.check_output_path(output or default_output(score_features, f"{method}.scores"), [features_path, score_features])
    set_threads(threads)
    options: dict = {"contamination": contamination, "random_state": seed}
    if method in ("ae", "dagmm"):
        options.update(batch_size=batch_size, device=resolve_device(device))
        options["epochs"] = epochs if epochs is not None else (200 if method == "ae" else 100)
        if lr is not None:
            options["lr"] = lr
    if method == "ae":
        options.update(layers=tuple(layers), activation=activation)
    if method == "ocsvm":
        options["max_train_samples"] = max_train_samples
    try:
        detector = BASELINES[method](**options)
    except ValueError as error:
        raise UsageError(str(error)) from None
    train = load_features(features_path)
    target = train if Path(score_features) == Path(features_path) else load_features(score_features)
    if target["encoding_fingerprint"] != train["encoding_fingerprint"]:
        raise StaleError(f"is encoded differently from {features_path}; use extract --like", score_features)
    progress(f"fitting {method}", 0, 1)
    try:
        detector.fit(train["X"])
    except ValueError as error:
        raise DataError(f"{method} failed: {error}", features_path) from None
    progress(f"fitting {method}", 1, 1)
    scores = np.asarray(detector.decision_function(target["X"]), dtype=np.float32)
    params = {"method": method, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}}
    inputs = {"features": {"path": str(score_features), "fingerprint": target["fingerprint"]},
              "train_features": {"path": str(features_path), "fingerprint": train["fingerprint"]}}
    # the detector's own threshold (its contamination quantile of the *training* scores), not one
    # recomputed on the scored rows
    summary = write_scores(output, params, inputs, len(scores), [(0, scores)], target["y"], contamination,
                           float(detector.threshold_))
    return {"output": summary.pop("output"), "method": method, **summary}
