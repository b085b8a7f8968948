"""Per-video feature files (``read_video_features``): one file per video with one row per temporal
segment, as text (``.txt``, optionally gzipped, e.g. UCF-Crime's C3D features) or ``.npy``; and
UCF-Crime's temporal annotations (``read_ucf_annotations``, ``segment_labels``)."""

from __future__ import annotations

import fnmatch
import gzip
import io
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from deepuad.inputs.media import first_line, is_gzip, MediaError

__all__ = ["VideoFeatures", "VIDEO_FEATURE_PATTERNS", "read_video_features", "video_name", "read_ucf_annotations",
           "segment_labels"]


VIDEO_FEATURE_PATTERNS = ("*.txt", "*.txt.gz", "*.npy")
_NPY_MAGIC = b"\x93NUMPY"
# Stripped from file names (repeatedly, case-insensitively) to get the video name.
_FILE_SUFFIXES = (".gz", ".txt", ".npy", ".mp4", ".avi")


@dataclass
class VideoFeatures:
    """Segment features of several videos, one row per segment.

    ``X``: float32 (total segments, D). ``video``: str, the video each row belongs to.
    ``segment``: int64, the row's 0-based index within its video. ``files``: the feature
    files read (one per video, in the order their rows appear).
    """

    X: np.ndarray
    video: np.ndarray
    segment: np.ndarray
    files: list[str]


def video_name(file_name: str) -> str:
    """The video a feature/annotation file name refers to.

    Drops the file suffixes (.txt, .gz, .npy, .mp4, .avi) and a trailing "_C3D":
    "Arrest002_x264_C3D.txt.gz" and "Arrest002_x264.mp4" both give "Arrest002_x264".
    """
    name = os.path.basename(file_name)
    stripped = True
    while stripped:
        stripped = False
        for suffix in _FILE_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name, stripped = name[: -len(suffix)], True
    if name.upper().endswith("_C3D") and len(name) > 4:
        name = name[:-4]
    return name


def _read_feature_file(path) -> np.ndarray:
    """One video's features as float (segments, D) from .npy or (gzipped) text."""
    try:
        with open(path, "rb") as f:
            is_npy = f.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    except OSError as error:
        raise MediaError(path, f"cannot open: {error.strerror or error}") from None
    try:
        if is_npy:
            # Memory-mapping checks the declared shape against the file size before any
            # allocation; a corrupt header cannot make us allocate its declared size.
            features = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            stream = gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")
            with io.TextIOWrapper(stream, encoding="latin-1") as text, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                features = np.loadtxt(text, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error) as error:
        kind = ".npy array" if is_npy else "text matrix (one row of numbers per segment)"
        raise MediaError(path, f"not a readable {kind}: {first_line(error)}") from None
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise MediaError(path, f"expected a 2-D numeric array (segments x features), got "
                               f"{features.dtype} of shape {features.shape}")
    if features.shape[0] == 0 or features.shape[1] == 0:
        raise MediaError(path, "holds no segments")
    features = np.asarray(features, dtype=np.float32)
    if not np.isfinite(features).all():
        raise MediaError(path, "contains NaN or infinite values")
    return features


def read_video_features(folder, pattern=VIDEO_FEATURE_PATTERNS) -> VideoFeatures:
    """Feature files under ``folder`` (at any depth, sorted by path), stacked into one table.

    ``pattern``: glob pattern(s) matched against file names. A file holds one row per
    temporal segment; text files may be gzipped (detected from their content). ``folder``
    may also be a single feature file. All files must have the same width; each video name
    (see ``video_name``) must occur once.
    """
    patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern)
    folder = Path(folder)
    if folder.is_file():
        paths = [folder]
    elif folder.is_dir():
        paths = sorted(
            (Path(parent, name) for parent, _, names in os.walk(folder) for name in names
             if any(fnmatch.fnmatch(name, p) for p in patterns)),
            key=lambda p: p.relative_to(folder).as_posix())
        if not paths:
            raise MediaError(folder, f"no feature files matching {' '.join(patterns)}")
    else:
        raise MediaError(folder, "no such file or folder")

    blocks, videos, files, file_of_video = [], [], [], {}
    for path in paths:
        name = video_name(path.name)
        if name in file_of_video:
            raise MediaError(path, f"video {name!r} already read from {file_of_video[name]}")
        features = _read_feature_file(path)
        if blocks and features.shape[1] != blocks[0].shape[1]:
            raise MediaError(path, f"has {features.shape[1]} features per segment, but "
                                   f"{files[0]} has {blocks[0].shape[1]}")
        file_of_video[name] = str(path)
        blocks.append(features)
        videos.append(name)
        files.append(str(path))
    return VideoFeatures(
        X=np.concatenate(blocks, axis=0),
        video=np.repeat(np.array(videos, dtype=str), [len(b) for b in blocks]),
        segment=np.concatenate([np.arange(len(b), dtype=np.int64) for b in blocks]),
        files=files,
    )


def read_ucf_annotations(path) -> dict[str, list[tuple[int, int]]]:
    """UCF-Crime's ``Temporal_Anomaly_Annotation_for_Testing_Videos.txt`` as {video: intervals}.

    Each line: ``video class start1 end1 start2 end2`` (whitespace-separated, frame numbers,
    -1 = no interval). Keys are video names without ".mp4" (see ``video_name``); intervals
    are inclusive (start, end) frame pairs; normal videos map to [].
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MediaError(path, f"not a readable text file: {first_line(error)}") from None

    annotations: dict[str, list[tuple[int, int]]] = {}
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {line_number}"
        if len(fields) < 2 or len(fields) % 2:
            raise MediaError(path, f"{where}: expected 'video class start end [start end ...]', "
                                   f"got {len(fields)} fields")
        try:
            frames = [int(value) for value in fields[2:]]
        except ValueError:
            raise MediaError(path, f"{where}: frame numbers must be integers") from None
        intervals = []
        for start, end in zip(frames[0::2], frames[1::2]):
            if start == -1 and end == -1:
                continue
            if start < 0 or end < start:
                raise MediaError(path, f"{where}: invalid interval {start}-{end}")
            intervals.append((start, end))
        name = video_name(fields[0])
        if name in annotations:
            raise MediaError(path, f"{where}: video {name!r} is annotated twice")
        annotations[name] = intervals
    if not annotations:
        raise MediaError(path, "holds no annotations")
    return annotations


def segment_labels(n_segments: int, intervals: Sequence[tuple[int, int]],
                   frames_per_segment: float = 16) -> np.ndarray:
    """Per-segment labels (int8, 1 = anomalous) from inclusive frame intervals.

    Segment i covers frames [i * frames_per_segment, (i + 1) * frames_per_segment) and is 1
    when any of its frames lies in an annotated interval. The default of 16 frames is
    C3D's clip length, which the paper uses: one feature row per 16-frame clip. UCF-Crime's
    distributed features instead average each video into 32 segments; for those pass
    ``frames_per_segment = n_frames / 32`` (a float) with the video's frame count.
    """
    if n_segments < 0:
        raise ValueError(f"n_segments must be >= 0, got {n_segments}")
    if not frames_per_segment > 0:
        raise ValueError(f"frames_per_segment must be > 0, got {frames_per_segment}")
    index = np.arange(n_segments, dtype=np.float64)
    # The integer frames of segment i: ceil(i * fps) up to (but excluding) (i + 1) * fps.
    first_frame = np.ceil(index * frames_per_segment)
    end = (index + 1) * frames_per_segment
    labels = np.zeros(n_segments, dtype=np.int8)
    for start, stop in intervals:
        if start < 0 or stop < start:
            raise ValueError(f"invalid frame interval ({start}, {stop})")
        # Overlap: the segment's first frame at or after `start` exists and is <= stop.
        first_inside = np.maximum(first_frame, start)
        labels[(first_inside <= stop) & (first_inside < end)] = 1
    return labels

