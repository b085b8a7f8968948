"""Readers that turn raw image and video inputs into feature arrays for ``deepuad extract``.

Supported inputs:

* **MNIST IDX files** (``read_idx``, ``read_mnist``): the IDX format of LeCun's MNIST
  distribution, gzip-compressed or plain (detected from the magic bytes, not the name).
* **A folder of images** (``read_image_folder``, ``load_image_batch``): PNG/JPEG/BMP files,
  optionally sorted into class sub-folders; decoded with Pillow, converted to RGB or
  grayscale and resized to one fixed size. Unreadable images are listed and skipped.
* **A TorchScript feature extractor** (``extract_with_torchscript``,
  ``extract_image_folder``): a model the user saved with ``torch.jit.save``, applied to
  image batches. Loading a TorchScript model runs the user's own model code, so only pass
  models you trust. That is the user's explicit choice; deepuad's own artifacts never
  execute code.
* **Per-video feature files** (``read_video_features``): one file per video with one row per
  temporal segment, as text (``.txt``, optionally gzipped, e.g. UCF-Crime's C3D features)
  or ``.npy``.
* **UCF-Crime temporal annotations** (``read_ucf_annotations``, ``segment_labels``).

``one_class_task`` builds the usual "one class is normal, a few samples of the others are
anomalies" task from any labelled set.

Every problem with an input raises ``MediaError(path, problem)``; bad parameters raise
``ValueError``. Nothing here prints, exits or writes files: the caller does that.
Corrupt files fail fast: sizes declared in headers are checked against what the file can
actually hold before anything of that size is allocated.

Longer than 400 lines because it holds every non-table reader (MNIST IDX, image folders,
TorchScript feature extraction, per-video feature files, UCF-Crime annotations), each with its
checks of hostile files; a new kind of media input would be its own module in deepuad/inputs/.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import math
import os
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepuad.errors import InputError

__all__ = [
    "MediaError",
    "read_idx",
    "read_mnist",
    "ImageFolder",
    "IMAGE_EXTENSIONS",
    "RESAMPLE",
    "list_image_files",
    "read_image_folder",
    "load_image_batch",
    "extract_with_torchscript",
    "extract_image_folder",
    "VideoFeatures",
    "VIDEO_FEATURE_PATTERNS",
    "read_video_features",
    "video_name",
    "read_ucf_annotations",
    "segment_labels",
    "one_class_task",
]


class MediaError(InputError):
    """A problem with one input file or folder: ``str(error) == f"{path}: {problem}"``.

    An ``InputError``, so the command line reports it in one line with exit code 3."""

    def __init__(self, path, problem: str):
        super().__init__(problem, path)
        self.args = (path, problem)  # so the exception pickles (e.g. across worker processes)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _first_line(error: BaseException) -> str:
    """A library's error message cut to its first line (torch's run to pages)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


GZIP_MAGIC = b"\x1f\x8b"

# Deflate cannot expand data by more than about 1032:1, so a gzip file of n bytes
# decompresses to at most ~1032 n bytes. Checking declared sizes against this bound
# rejects absurd headers before reading anything.
_MAX_GZIP_RATIO = 1100


def _is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def _open_binary(path):
    """``path`` opened for reading bytes, transparently gunzipped if it starts with gzip's magic."""
    try:
        if _is_gzip(path):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except IsADirectoryError:
        raise MediaError(path, "is a folder, expected a file") from None
    except OSError as error:
        raise MediaError(path, f"cannot open: {error.strerror or error}") from None


# --------------------------------------------------------------------------------------
# MNIST IDX
# --------------------------------------------------------------------------------------

# IDX header: two zero bytes, a dtype code, the number of dimensions, then one big-endian
# uint32 per dimension. Multi-byte values are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_READ_CHUNK = 1 << 20


def _read_exactly(f, n_bytes: int) -> bytes:
    """Up to ``n_bytes`` from ``f``, in chunks, so memory grows only with what is really there."""
    chunks = []
    remaining = n_bytes
    while remaining > 0:
        chunk = f.read(min(_READ_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or plain), in native byte order.

    Raises MediaError for a missing file, a wrong magic number, an unknown dtype code,
    or a size that does not match the declared dimensions (truncated or trailing data).
    """
    f = _open_binary(path)
    try:
        with f:
            compressed = isinstance(f, gzip.GzipFile)
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
                raise MediaError(path, "not an IDX file (wrong magic number)")
            dtype_code, n_dims = magic[2], magic[3]
            if dtype_code not in _IDX_DTYPES:
                raise MediaError(path, f"not an IDX file (unknown dtype code 0x{dtype_code:02x})")
            if n_dims == 0:
                raise MediaError(path, "IDX header declares no dimensions")
            dims_bytes = f.read(4 * n_dims)
            if len(dims_bytes) < 4 * n_dims:
                raise MediaError(path, "truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
            dtype = _IDX_DTYPES[dtype_code]
            # Python ints: no overflow however large the declared dimensions are.
            data_bytes = math.prod(dims) * dtype.itemsize
            header_bytes = 4 + 4 * n_dims
            declared = f"declares shape {dims} of {dtype.name} ({data_bytes} bytes of data)"

            if compressed:
                file_bytes = os.path.getsize(path)
                if data_bytes > _MAX_GZIP_RATIO * file_bytes + 4096:
                    raise MediaError(
                        path, f"corrupt IDX header: {declared}, more than a {file_bytes}-byte "
                        "gzip file can hold")
                # Read one byte more than declared to notice trailing data.
                data = _read_exactly(f, data_bytes + 1)
                actual = len(data)
            else:
                actual = os.fstat(f.fileno()).st_size - header_bytes
                data = f.read(data_bytes) if actual == data_bytes else b""
            if actual < data_bytes:
                raise MediaError(path, f"truncated IDX file: {declared} but holds only {actual}")
            if actual > data_bytes:
                raise MediaError(path, f"IDX file has data after the declared end: {declared}")
    except (OSError, EOFError, zlib.error) as error:
        # Damaged gzip streams surface here (BadGzipFile, EOFError, zlib.error).
        raise MediaError(path, f"unreadable file: {_first_line(error)}") from None
    array = np.frombuffer(data[:data_bytes], dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # native order, and a writable copy


def read_mnist(images_path, labels_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    """MNIST-style IDX images as ``X`` float32 (N, rows*cols) in [0, 1], plus labels.

    For MNIST that is (N, 784). ``class_label`` is int64 (N,), or None without a label file.
    """
    images = read_idx(images_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        hint = " (is this the label file?)" if images.ndim == 1 else ""
        raise MediaError(
            images_path, f"expected unsigned-byte images of shape (N, rows, cols), got "
            f"{images.dtype} of shape {images.shape}{hint}")
    if images.shape[0] == 0:
        raise MediaError(images_path, "holds no images")
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    if labels_path is None:
        return X, None

    labels = read_idx(labels_path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise MediaError(
            labels_path, f"expected integer labels of shape (N,), got {labels.dtype} of "
            f"shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise MediaError(
            labels_path, f"holds {labels.shape[0]} labels but {images_path} holds "
            f"{images.shape[0]} images")
    return X, labels.astype(np.int64)


# --------------------------------------------------------------------------------------
# A folder of images
# --------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# One fixed filter so the same folder always gives the same pixels. Pillow's BILINEAR
# filter widens its support when shrinking, so downsizing is antialiased.
RESAMPLE = Image.Resampling.BILINEAR


@dataclass
class ImageFolder:
    """Images read from a folder, one row per readable image, in ``ids`` order.

    ``X``: float32 (N, H*W*C) raw pixels in [0, 1], flattened channel-last (or, from
    ``extract_image_folder``, the model's features (N, D)). ``class_label``: str (N,), the
    first-level sub-folder of each image ("" for images directly in the root). ``ids``: str
    (N,), the path relative to the root with "/" separators, sorted. ``skipped``: (relative
    path, reason) for every image file that could not be read.
    """

    X: np.ndarray
    class_label: np.ndarray
    ids: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _check_size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ValueError(f"size must be (height, width) in positive pixels, got {size!r}")
    return int(size[0]), int(size[1])


def list_image_files(root, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Relative paths ("/"-separated, sorted) of the image files under ``root``, at any depth.

    Extensions compare case-insensitively. Hidden files and folders (names starting with
    ".") are ignored: they are editor, OS or notebook leftovers (".ipynb_checkpoints", "._x.png"),
    not part of a data set.
    """
    root = Path(root)
    if not root.exists():
        raise MediaError(root, "no such folder")
    if not root.is_dir():
        raise MediaError(root, "is a file, expected a folder of images")
    suffixes = tuple(e.lower() for e in extensions)
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(suffixes):
                found.append(Path(folder, name).relative_to(root).as_posix())
    return sorted(found)


def _class_of(relative_path: str) -> str:
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else ""


def _readable_images(root, relative_paths, size, grayscale, skipped: list):
    """(relative path, pixels) of every image that loads, in order; the others are appended to
    ``skipped`` as (relative path, problem)."""
    for relative_path in relative_paths:
        try:
            pixels = _load_image(Path(root, relative_path), size, grayscale)
        except MediaError as error:
            skipped.append((relative_path, error.problem))
            continue
        yield relative_path, pixels


def _load_image(path, size: tuple[int, int], grayscale: bool) -> np.ndarray:
    """One image as uint8 (H, W, C); raises MediaError with the reason it cannot be read."""
    height, width = size
    try:
        # A header declaring a gigantic image is treated as corrupt rather than decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                # Camera JPEGs store their orientation in EXIF; apply it as viewers do.
                image = ImageOps.exif_transpose(image)
                if image.mode == "P" and "transparency" in image.info:
                    image = image.convert("RGBA")  # avoids Pillow's palette-transparency warning
                image = image.convert("L" if grayscale else "RGB")
                image = image.resize((width, height), RESAMPLE)
                pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except UnidentifiedImageError:
        raise MediaError(path, "not a recognised image file") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise MediaError(path, "image too large (looks like a decompression bomb)") from None
    except Exception as error:
        # Pillow reports damaged data as OSError ("image file is truncated"), SyntaxError
        # (broken PNG chunks), ValueError and, from some decoders, other exceptions. One
        # bad file must not end a folder read, so whatever the decoder raises means "unreadable".
        raise MediaError(path, f"unreadable image: {_first_line(error)}") from None
    return pixels.reshape(height, width, -1)


def read_image_folder(root, size=(32, 32), grayscale: bool = False,
                      extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ImageFolder:
    """All images under ``root`` as raw pixels resized to ``size`` = (height, width).

    Class = first-level sub-folder (deeper nesting is allowed and kept in the id).
    Unreadable images go to ``skipped``; raises MediaError only when the folder is missing,
    holds no image files, or none of them can be read.
    """
    size = _check_size(size)
    relative_paths = list_image_files(root, extensions)
    if not relative_paths:
        raise MediaError(root, f"no image files ({', '.join(extensions)}) found")
    channels = 1 if grayscale else 3
    X = np.empty((len(relative_paths), size[0] * size[1] * channels), dtype=np.float32)
    kept, skipped = [], []
    for relative_path, pixels in _readable_images(root, relative_paths, size, grayscale, skipped):
        X[len(kept)] = pixels.reshape(-1) / np.float32(255.0)
        kept.append(relative_path)
    if not kept:
        raise MediaError(root, f"none of the {len(skipped)} image files could be read "
                               f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return ImageFolder(
        X=X[: len(kept)],
        class_label=np.array([_class_of(p) for p in kept], dtype=str),
        ids=np.array(kept, dtype=str),
        skipped=skipped,
    )


def load_image_batch(paths: Sequence, size=(32, 32), grayscale: bool = False) -> np.ndarray:
    """The images at ``paths`` as float32 (n, C, H, W) in [0, 1], the layout torch models take.

    Strict: the first unreadable image raises MediaError naming it (``extract_image_folder``
    is the variant that skips them).
    """
    size = _check_size(size)
    channels = 1 if grayscale else 3
    batch = np.empty((len(paths), channels, size[0], size[1]), dtype=np.float32)
    for i, path in enumerate(paths):
        batch[i] = _load_image(path, size, grayscale).transpose(2, 0, 1) / np.float32(255.0)
    return batch


# --------------------------------------------------------------------------------------
# TorchScript feature extractor
# --------------------------------------------------------------------------------------


def _load_torchscript(model_path, device: str):
    """The model in eval mode on ``device``. Runs the model's code: trusted models only."""
    import torch

    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r}: {_first_line(error)}") from None
    if torch_device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if (torch_device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    if not os.path.exists(model_path):
        raise MediaError(model_path, "no such file")
    if os.path.isdir(model_path):
        raise MediaError(model_path, "is a folder, expected a TorchScript file")
    try:
        model = torch.jit.load(model_path, map_location=torch_device)
    except Exception as error:  # torch raises RuntimeError, ValueError, pickle errors, ...
        raise MediaError(
            model_path, "not a TorchScript model (save it with torch.jit.save; "
            f"torch.jit.load said: {_first_line(error)})") from None
    model.eval()
    return model, torch_device


def _features_for_batch(model, batch, model_path, torch_device) -> np.ndarray:
    """The model's output for one batch, flattened to float32 (n, D); MediaError if unusable."""
    import torch

    inputs = torch.as_tensor(np.ascontiguousarray(batch, dtype=np.float32)).to(torch_device)
    try:
        with torch.no_grad():
            output = model(inputs)
    except Exception as error:  # shape mismatches etc. arrive as RuntimeError from TorchScript
        raise MediaError(
            model_path, f"the model failed on a batch of shape {tuple(inputs.shape)}: "
            f"{_first_line(error)}") from None
    if not isinstance(output, torch.Tensor):
        raise MediaError(model_path, f"the model returned {type(output).__name__}, "
                                     "expected one tensor of features")
    if output.ndim == 0 or output.shape[0] != inputs.shape[0]:
        raise MediaError(model_path, f"the model returned shape {tuple(output.shape)} for "
                                     f"{inputs.shape[0]} inputs; expected one row per input")
    features = output.detach().to("cpu", torch.float32).reshape(output.shape[0], -1).numpy()
    if not np.isfinite(features).all():
        raise MediaError(model_path, "the model produced NaN or infinite features")
    return features


def _batches(images, batch_size: int) -> Iterable:
    """Split one array along its first axis; pass an iterable of batches through as it is."""
    if hasattr(images, "shape"):  # one numpy array (or CPU tensor) holding all images
        images = np.asarray(images)
        if images.ndim < 1:
            raise ValueError("images must be an array of shape (N, C, H, W)")
        return (images[start:start + batch_size] for start in range(0, len(images), batch_size))
    return images


def extract_with_torchscript(model_path, images, device: str = "cpu",
                             batch_size: int = 256) -> np.ndarray:
    """Features (N, D) float32 from a TorchScript model applied to ``images``.

    ``images`` is a float32 (N, C, H, W) array (split into ``batch_size`` chunks), or an
    iterable of such batches (used as they come, so images can be streamed from disk). The
    model sees exactly these values: put any normalisation (e.g. ImageNet mean/std) inside
    the scripted model. Its output is flattened to one row per image.

    Security: ``torch.jit.load`` runs the model's own code. Only pass models you trust;
    this is the user's explicit choice (deepuad's own artifacts never execute code).

    Raises MediaError when the file is not a TorchScript archive, the model fails on the
    input, or its output is not one finite row per image; ValueError for a bad device or
    when there are no images.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model, torch_device = _load_torchscript(model_path, device)
    feature_blocks = []
    for batch in _batches(images, batch_size):
        if len(batch) == 0:
            continue
        features = _features_for_batch(model, batch, model_path, torch_device)
        if feature_blocks and features.shape[1] != feature_blocks[0].shape[1]:
            raise MediaError(
                model_path, f"the model returned {features.shape[1]} features for one batch "
                f"and {feature_blocks[0].shape[1]} for another")
        feature_blocks.append(features)
    if not feature_blocks:
        raise ValueError("no images to extract features from")
    return np.concatenate(feature_blocks, axis=0)


def extract_image_folder(model_path, root, size=(224, 224), grayscale: bool = False,
                         device: str = "cpu", batch_size: int = 256,
                         extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ImageFolder:
    """``read_image_folder`` through a TorchScript model: ``X`` holds the model's features.

    Images are loaded ``batch_size`` at a time (never the whole folder at model resolution),
    as float32 (n, C, H, W) in [0, 1]; unreadable ones go to ``skipped``. Same security
    note as ``extract_with_torchscript``: the model's code runs.
    """
    size = _check_size(size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    relative_paths = list_image_files(root, extensions)
    if not relative_paths:
        raise MediaError(root, f"no image files ({', '.join(extensions)}) found")
    model, torch_device = _load_torchscript(model_path, device)
    kept, skipped, feature_blocks = [], [], []
    batch, batch_paths = [], []

    def run_batch():
        feature_blocks.append(_features_for_batch(model, np.stack(batch), model_path, torch_device))
        kept.extend(batch_paths)
        batch.clear()
        batch_paths.clear()

    for relative_path, pixels in _readable_images(root, relative_paths, size, grayscale, skipped):
        batch.append(pixels.transpose(2, 0, 1) / np.float32(255.0))
        batch_paths.append(relative_path)
        if len(batch) == batch_size:
            run_batch()
    if batch:
        run_batch()
    if not kept:
        raise MediaError(root, f"none of the {len(skipped)} image files could be read "
                               f"(first: {skipped[0][0]}: {skipped[0][1]})")
    widths = {block.shape[1] for block in feature_blocks}
    if len(widths) > 1:
        raise MediaError(model_path, f"the model returned varying feature widths {sorted(widths)}")
    return ImageFolder(
        X=np.concatenate(feature_blocks, axis=0),
        class_label=np.array([_class_of(p) for p in kept], dtype=str),
        ids=np.array(kept, dtype=str),
        skipped=skipped,
    )


# --------------------------------------------------------------------------------------
# Video features (UCF-Crime C3D and similar)
# --------------------------------------------------------------------------------------

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
            stream = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
            with io.TextIOWrapper(stream, encoding="latin-1") as text, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                features = np.loadtxt(text, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error) as error:
        kind = ".npy array" if is_npy else "text matrix (one row of numbers per segment)"
        raise MediaError(path, f"not a readable {kind}: {_first_line(error)}") from None
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
        raise MediaError(path, f"not a readable text file: {_first_line(error)}") from None

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


# --------------------------------------------------------------------------------------
# One-class tasks on labelled sets
# --------------------------------------------------------------------------------------


def one_class_task(class_label, normal_class, anomaly_ratio: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All samples of ``normal_class`` plus a few of every other class as anomalies.

    The anomalies are spread as evenly as the class counts allow over the other classes,
    and their number is round(n_normal * ratio / (1 - ratio)) so they make up
    ``anomaly_ratio`` of the result (MNIST digit 4: 982 fours at 0.05 -> 52 others).
    Returns the sorted row ``indices`` (int64) and ``y`` (int8, 1 = anomaly) aligned with
    them; the same ``seed`` gives the same task. A string ``normal_class`` (e.g. "4" from
    the command line) is compared with the labels as strings.
    """
    labels = np.asarray(class_label)
    if labels.ndim != 1:
        raise ValueError(f"class_label must be 1-D, got shape {labels.shape}")
    if not 0.0 < anomaly_ratio < 1.0:
        raise ValueError(f"anomaly_ratio must be in (0, 1), got {anomaly_ratio}")
    if isinstance(normal_class, str) or labels.dtype.kind in "USO":
        labels, normal_class = labels.astype(str), str(normal_class)
    is_normal = labels == normal_class
    n_normal = int(is_normal.sum())
    if n_normal == 0:
        present = ", ".join(map(str, np.unique(labels)[:20]))
        raise ValueError(f"normal class {normal_class!r} does not occur; classes: {present}")

    n_anomalies = int(math.floor(n_normal * anomaly_ratio / (1.0 - anomaly_ratio) + 0.5))
    n_available = len(labels) - n_normal
    if n_anomalies == 0:
        raise ValueError(f"anomaly_ratio {anomaly_ratio} gives no anomalies for "
                         f"{n_normal} normal samples")
    if n_anomalies > n_available:
        raise ValueError(f"anomaly_ratio {anomaly_ratio} needs {n_anomalies} anomalies but "
                         f"only {n_available} samples are of other classes")

    rng = np.random.default_rng(seed)
    other_classes, capacity = np.unique(labels[~is_normal], return_counts=True)
    taken = _spread_evenly(n_anomalies, capacity, rng)
    anomaly_indices = [
        rng.choice(np.flatnonzero(labels == cls), size=int(k), replace=False)
        for cls, k in zip(other_classes, taken) if k > 0
    ]
    indices = np.concatenate([np.flatnonzero(is_normal)] + anomaly_indices).astype(np.int64)
    order = np.argsort(indices, kind="stable")
    y = np.concatenate([np.zeros(n_normal, np.int8), np.ones(n_anomalies, np.int8)])
    return indices[order], y[order]


def _spread_evenly(total: int, capacity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How many to take from each class: equal shares, capped by what each class holds.

    Classes that run out leave their share to the others; the last few that cannot be split
    evenly go to randomly chosen classes (random so no class is favoured by its name).
    """
    taken = np.zeros(len(capacity), dtype=np.int64)
    remaining = total
    while remaining > 0:
        open_classes = np.flatnonzero(taken < capacity)
        share = remaining // len(open_classes)
        if share == 0:
            lucky = rng.choice(open_classes, size=remaining, replace=False)
            taken[lucky] += 1
            break
        for c in open_classes:
            take = min(share, capacity[c] - taken[c])
            taken[c] += take
            remaining -= take
    return taken
