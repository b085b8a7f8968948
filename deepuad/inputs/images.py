"""A folder of images (``read_image_folder``, ``load_image_batch``): PNG/JPEG/BMP files, optionally
sorted into class sub-folders; decoded with Pillow, converted to RGB or grayscale and resized to
one fixed size. Unreadable images are listed and skipped."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepuad.inputs.media import first_line, MediaError

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS", "RESAMPLE", "list_image_files", "read_image_folder", "load_image_batch"]


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


def check_size(size) -> tuple[int, int]:
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


def class_of(relative_path: str) -> str:
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else ""


def readable_images(root, relative_paths, size, grayscale, skipped: list):
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
        raise MediaError(path, f"unreadable image: {first_line(error)}") from None
    return pixels.reshape(height, width, -1)


def read_image_folder(root, size: tuple[int, int], grayscale: bool = False,
                      extensions: Sequence[str] = IMAGE_EXTENSIONS) -> ImageFolder:
    """All images under ``root`` as raw pixels resized to ``size`` = (height, width).

    Class = first-level sub-folder (deeper nesting is allowed and kept in the id).
    Unreadable images go to ``skipped``; raises MediaError only when the folder is missing,
    holds no image files, or none of them can be read.
    """
    size = check_size(size)
    relative_paths = list_image_files(root, extensions)
    if not relative_paths:
        raise MediaError(root, f"no image files ({', '.join(extensions)}) found")
    channels = 1 if grayscale else 3
    X = np.empty((len(relative_paths), size[0] * size[1] * channels), dtype=np.float32)
    kept, skipped = [], []
    for relative_path, pixels in readable_images(root, relative_paths, size, grayscale, skipped):
        X[len(kept)] = pixels.reshape(-1) / np.float32(255.0)
        kept.append(relative_path)
    if not kept:
        raise MediaError(root, f"none of the {len(skipped)} image files could be read "
                               f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return ImageFolder(
        X=X[: len(kept)],
        class_label=np.array([class_of(p) for p in kept], dtype=str),
        ids=np.array(kept, dtype=str),
        skipped=skipped,
    )


def load_image_batch(paths: Sequence, size: tuple[int, int], grayscale: bool = False) -> np.ndarray:
    """The images at ``paths`` as float32 (n, C, H, W) in [0, 1], the layout torch models take.

    Strict: the first unreadable image raises MediaError naming it (``extract_image_folder``
    is the variant that skips them).
    """
    size = check_size(size)
    channels = 1 if grayscale else 3
    batch = np.empty((len(paths), channels, size[0], size[1]), dtype=np.float32)
    for i, path in enumerate(paths):
        batch[i] = _load_image(path, size, grayscale).transpose(2, 0, 1) / np.float32(255.0)
    return batch

