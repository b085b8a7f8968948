"""``extract``: raw input (CSV/TSV, NumPy arrays, MNIST IDX, image folders, video features) -> a
features artifact. A new input kind: a reader in ``deepuad.inputs`` and a branch in
``_read_array_input`` (or ``detect_input_type``)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts.features import open_features, write_features
from deepuad.errors import DataError, OutputError, ParamError, RequestError, StaleError
from deepuad.estimators.params import DEFAULTS, check_params
from deepuad.stages._common import (
    default_output, existing_artifact_matches, file_sha256, no_progress, Progress, require_exists,
    require_input_file, resolve_device, skipped,
)
from deepuad.stages.defaults import DEVICE, EXTRACT


INPUT_TYPES = ("auto", "table", "numpy", "idx", "images", "video")


def detect_input_type(path: Path) -> str:
    """table (CSV/TSV), numpy (.npy/.npz), idx (MNIST), images or video (folders)."""
    from deepuad.inputs.images import list_image_files

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
    input_path, output=None, like=None, input_type=EXTRACT["input_type"], scale=None, compress=False,
    categorical=(), drop=(), label_column=None, anomaly_values=None, chunk_rows=EXTRACT["chunk_rows"],  # tables
    text_encoding=EXTRACT["text_encoding"], missing=None, id_columns=(),  # tables (missing: and arrays)
    labels=None, size=EXTRACT["size"], grayscale=False, model=None, device=DEVICE,  # MNIST labels; images
    annotations=None, segment_frames=EXTRACT["segment_frames"], per_video=False,  # video
    normal_class=None, anomaly_ratio=None, seed=DEFAULTS["seed"],  # labelled sets: the paper's one-class task
    skip_current=False, progress: Progress = no_progress,
) -> dict:
    """Raw input -> features artifact (X, y, feature_names, ids, encoding).

    Tables are encoded in streamed chunks; NumPy arrays, MNIST IDX, image folders (raw pixels
    or a TorchScript extractor's output) and per-video feature files are read whole.
    ``scale`` defaults to minmax for tables and NumPy arrays and to none for pixels/video;
    ``missing`` (a gap: error, drop or fill) to error. With ``like`` every choice of encoding
    (scale, categorical, drop, label, missing, id columns) is that file's, and giving one is
    refused rather than ignored."""
    check_params({"seed": seed})
    input_path = require_exists(input_path)
    if input_type not in INPUT_TYPES:
        raise ParamError("input_type", f"must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}")
    if chunk_rows < 1:
        raise ParamError("chunk_rows", f"must be >= 1, got {chunk_rows}")
    if input_type == "auto":
        input_type = detect_input_type(input_path)
    if input_type not in ("images", "video"):
        require_input_file(input_path)
    if missing is not None and input_type not in ("table", "numpy"):
        raise ParamError("missing", f"applies to tables and NumPy arrays only; this input is {input_type}")
    if id_columns and input_type != "table":
        raise ParamError("id_columns", f"applies to tables only; this input is {input_type}")
    scale_given = scale  # checked against like's below
    if scale is None:
        scale = "minmax" if input_type in ("table", "numpy") else "none"
    if (normal_class is None) != (anomaly_ratio is None):
        raise RequestError("`normal_class` and `anomaly_ratio` go together")
    if per_video and input_type != "video":
        raise ParamError("per_video", "applies to video feature folders only")
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
    if missing is not None:  # recorded only when given: the params of an extraction without them stay as they were
        params["missing"] = missing
    if id_columns:
        params["id_columns"] = list(id_columns)
    if input_type in ("idx", "images", "video"):
        params.update(labels=str(labels) if labels else None, size=list(size), grayscale=grayscale,
                      model=str(model) if model else None, annotations=str(annotations) if annotations else None,
                      segment_frames=segment_frames, normal_class=normal_class, anomaly_ratio=anomaly_ratio, seed=seed)
    inputs = {"raw": {"path": str(input_path), "sha256": input_sha256(input_path)}}
    like_encoding = None
    if like:
        with open_features(like, X=None) as features:
            like_encoding = features.encoding()
            inputs["like"] = {"path": str(like), "fingerprint": features.fingerprint}
        if bool(like_encoding.get("array")) == (input_type == "table"):
            raise StaleError(f"{like} was made from {'a table' if not like_encoding.get('array') else 'arrays'}; this input is {input_type}", input_path)
        _check_like_options(like, like_encoding, scale=scale_given, categorical=categorical, drop=drop, label_column=label_column,
                            anomaly_values=anomaly_values, missing=missing, id_columns=id_columns)
        missing = like_encoding.get("params", {}).get("missing", "error")
    missing = missing or "error"
    if skip_current and not per_video and existing_artifact_matches(output, "features", params, inputs):
        return skipped(output)

    if input_type != "table":
        raw = _read_array_input(input_path, input_type, labels, size, grayscale, model, device, annotations, segment_frames,
                                missing)
        if normal_class is not None:
            raw = _one_class_subset(raw, normal_class, anomaly_ratio, seed, input_path)
        if per_video:
            return _write_per_video(raw, output, params, inputs, scale, compress)
        return _write_arrays(raw, output, params, inputs, scale, like_encoding, like, compress, progress, missing)

    from deepuad.inputs.parquet import read_any_table  # CSV/TSV, or Parquet/Arrow through pyarrow (and pandas:
    from deepuad.inputs.tabular import TabularEncoder  # imported for tables only)

    unseen: dict[str, int] = {}
    if like_encoding is not None:
        encoder = TabularEncoder.from_dict(like_encoding)
    else:
        encoder = TabularEncoder(categorical, drop, label_column, anomaly_values, scale, missing, id_columns)
        rows = 0
        for df in read_any_table(input_path, chunk_rows, text_encoding, drop, id_columns):
            encoder.partial_fit(df, input_path)
            rows += len(df)
            progress("fitting encoding", rows, 0)
        encoder.finish_fit(input_path)

    # rows encoded at a time: a chunk of chunk_rows rows times a wide one-hot encoding (float64
    # while it is built) must not take gigabytes
    rows_per_piece = max(1, (32 << 20) // max(1, len(encoder.feature_names_)))
    dropped: list[np.ndarray] | None = [] if encoder.missing == "drop" else None
    filled: dict[str, int] | None = {} if encoder.missing == "fill" else None

    def table_chunks():
        for df in read_any_table(input_path, chunk_rows, text_encoding, encoder.drop, encoder.id_columns):
            for start in range(0, len(df), rows_per_piece):
                piece = df.iloc[start : start + rows_per_piece]
                gaps = encoder.gap_rows(piece)
                if gaps.any():
                    dropped.append(piece.index.to_numpy()[gaps])
                    piece = piece[~gaps]
                X_chunk, unseen_chunk = encoder.transform(piece, input_path, filled)
                for column, count in unseen_chunk.items():
                    unseen[column] = unseen.get(column, 0) + count
                yield X_chunk, encoder.labels(piece, input_path), piece.index.to_numpy(), encoder.id_values(piece)

    summary = write_features(output, table_chunks(), encoder.to_dict(), params, inputs, compress, progress, unseen,
                             dropped=dropped, filled=filled)
    for column, count in unseen.items():  # a warning, and in the summary all the same
        warnings.warn(f"column {column!r}: {count} row(s) hold a category unseen in {like}; encoded as none of its categories")
    return summary


# extract's encoding options, and how the stored encoding's params hold each when it was not given
LIKE_DEFAULTS = {"scale": None, "categorical": [], "drop": [], "label_column": None, "anomaly_values": None, "missing": "error",
                 "id_columns": []}


def _check_like_options(like, encoding: dict, **given) -> None:
    """ParamError for an encoding option given with ``like`` that disagrees with the features
    file, which decides them all: ignored, it would look as if it had been applied. The same
    value as stored is accepted (scripts may repeat them)."""
    stored = encoding.get("params", {})
    for name, value in given.items():
        if not value:
            continue
        recorded = stored.get(name, LIKE_DEFAULTS[name])
        same = sorted(map(str, value)) == sorted(map(str, recorded or [])) if isinstance(value, (list, tuple)) else value == recorded
        if not same:
            shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            raise ParamError(name, f"{shown} conflicts with `like` {like}, which was encoded with `{name}` "
                             f"{recorded if not isinstance(recorded, list) else ','.join(map(str, recorded)) or '(none)'}: "
                             f"the features file decides the encoding; leave `{name}` out")


def _check_table_options(input_type, categorical, drop, label_column, anomaly_values) -> None:
    """Options only a table can honour are refused for other inputs instead of being ignored,
    and ``anomaly_values`` without ``label_column`` (which would leave the label among the
    features) is refused."""
    if input_type != "table":
        given = [f"`{name}`" for name, value in (("categorical", categorical), ("drop", drop), ("label_column", label_column),
                                                 ("anomaly_values", anomaly_values)) if value]
        if given:
            raise RequestError(f"{', '.join(given)} apply to CSV/TSV tables only; this input is {input_type}")
    if anomaly_values and label_column is None:
        raise RequestError("`anomaly_values` needs `label_column` (else the label column would be encoded as a feature)")


def _read_array_input(path, input_type, labels, size, grayscale, model, device, annotations, segment_frames,
                      missing="error") -> dict:
    """{"X", "y", "ids", "extra": {name: array}, "notes": {...}} for the non-table inputs."""
    from deepuad.inputs.arrays import load_array_file

    if input_type == "numpy":
        X, y = load_array_file(path, missing)
        return {"X": X, "y": y, "ids": None, "extra": {}, "notes": {}}
    if input_type == "idx":
        from deepuad.inputs.mnist import read_mnist

        X, class_label = read_mnist(path, labels)
        extra = {} if class_label is None else {"class_label": class_label}
        return {"X": X, "y": None, "ids": None, "extra": extra, "notes": {}}
    if input_type == "images":
        if model:
            from deepuad.inputs.torchscript import extract_image_folder

            folder = extract_image_folder(model, path, size=size, grayscale=grayscale, device=resolve_device(device))
        else:
            from deepuad.inputs.images import read_image_folder

            folder = read_image_folder(path, size=size, grayscale=grayscale)
        notes = {"skipped_images": len(folder.skipped)}
        if folder.skipped:
            notes["skipped_examples"] = [f"{name}: {why}" for name, why in folder.skipped[:5]]
            warnings.warn(f"{len(folder.skipped)} unreadable image(s) skipped, e.g. {folder.skipped[0][0]}: {folder.skipped[0][1]}")
        return {"X": folder.X, "y": None, "ids": folder.ids.astype(object),
                "extra": {"class_label": folder.class_label.astype(object)}, "notes": notes}
    from deepuad.inputs.video import read_ucf_annotations, read_video_features, segment_labels

    videos = read_video_features(path)
    y = None
    notes = {"videos": len(set(videos.video.tolist()))}
    if annotations:
        intervals = read_ucf_annotations(annotations)
        names = list(dict.fromkeys(videos.video.tolist()))
        missing = [v for v in names if v not in intervals]
        if missing:
            raise DataError(f"no annotation for video(s) {', '.join(missing[:3])}", annotations)
        y = np.empty(len(videos.X), dtype=np.int8)
        for name in names:
            rows = np.flatnonzero(videos.video == name)
            y[rows] = segment_labels(len(rows), intervals[name], segment_frames)
    ids = np.array([f"{v}#{s}" for v, s in zip(videos.video, videos.segment)], dtype=object)
    return {"X": videos.X, "y": y, "ids": ids, "notes": notes,
            "extra": {"video": videos.video.astype(object), "segment": videos.segment}}


def _one_class_subset(raw: dict, normal_class, anomaly_ratio, seed, path) -> dict:
    """The paper's task: all of one class as normal plus the others sampled to anomaly_ratio."""
    from deepuad.inputs.one_class import one_class_task

    class_label = raw["extra"].get("class_label")
    if class_label is None:
        raise ParamError("normal_class", f"needs class labels, and {path} has none (pass `labels` for IDX files)")
    rows, y = one_class_task(class_label, normal_class, anomaly_ratio, seed)  # ParamError for a class or ratio it cannot use
    subset = {k: (None if v is None else v[rows]) for k, v in raw.items() if k in ("X", "ids")}
    subset["ids"] = rows.astype(np.int64) if raw["ids"] is None else subset["ids"]  # rows of the original input
    return {**subset, "y": y, "extra": {k: v[rows] for k, v in raw["extra"].items()},
            "notes": {**raw["notes"], "task": {"normal_class": str(normal_class), "anomaly_ratio": anomaly_ratio, "seed": seed}}}


def _write_arrays(raw, output, params, inputs, scale, like_encoding, like, compress, progress, missing="error") -> dict:
    from deepuad.inputs.arrays import ArrayScaler

    X = raw["X"]
    dropped = None
    if missing == "drop":  # NaN is a gap only in a float array (load_array_file lets it through)
        gaps = np.isnan(X).any(axis=1) if X.dtype.kind == "f" else np.zeros(len(X), dtype=bool)
        dropped = [np.flatnonzero(gaps)]
        if gaps.all():
            raise DataError("every row has a NaN: nothing is left after `missing` drop", inputs["raw"]["path"])
        X = X[~gaps]
        rows = np.flatnonzero(~gaps)
        ids = rows.astype(np.int64) if raw["ids"] is None else raw["ids"][rows]
        raw = {**raw, "X": X, "y": None if raw["y"] is None else raw["y"][rows], "ids": ids,
               "extra": {k: v[rows] for k, v in raw["extra"].items()}}
    filled = None
    if missing == "fill":
        counts = np.isnan(X).sum(axis=0) if X.dtype.kind == "f" else np.zeros(X.shape[1], dtype=int)
        filled = {f"x{j}": int(n) for j, n in enumerate(counts) if n}
    if like_encoding is not None:
        scaler = ArrayScaler.from_dict(like_encoding)
        if X.shape[1] != len(scaler.offset_):
            raise DataError(f"has {X.shape[1]} columns but {like} was fitted on {len(scaler.offset_)}", inputs["raw"]["path"])
    else:
        scaler = ArrayScaler(scale, missing).fit(X, inputs["raw"]["path"])
    encoding = scaler.to_dict()
    encoding.update(feature_names=[f"x{i}" for i in range(X.shape[1])], input_type=params["input_type"])
    for key in ("size", "grayscale", "model"):
        if key in params:
            encoding[key] = params[key]
    summary = write_features(output, iter([(scaler.transform(X), raw["y"])]), encoding, params, inputs, compress, progress,
                             ids=raw["ids"], extra=raw["extra"], dropped=dropped, filled=filled)
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
                                no_progress)
        written.append(summary)
    return {"output": str(folder), "videos": len(written), "files": [w["output"] for w in written],
            "rows": int(sum(w["rows"] for w in written))}
