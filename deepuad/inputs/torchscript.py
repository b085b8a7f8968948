"""A TorchScript feature extractor (``extract_with_torchscript``, ``extract_image_folder``): a model
the user saved with ``torch.jit.save``, applied to image batches. Loading a TorchScript model runs
the user's own model code, so only pass models you trust. That is the user's explicit choice;
deepuad's own artifacts never execute code."""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from deepuad.inputs.images import check_size, class_of, readable_images, IMAGE_EXTENSIONS, ImageFolder, list_image_files
from deepuad.inputs.media import first_line, MediaError

__all__ = ["extract_with_torchscript", "extract_image_folder"]


def _load_torchscript(model_path, device: str):
    """The model in eval mode on ``device``. Runs the model's code: trusted models only."""
    import torch

    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"invalid device {device!r}: {first_line(error)}") from None
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
            f"torch.jit.load said: {first_line(error)})") from None
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
            f"{first_line(error)}") from None
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
    size = check_size(size)
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

    for relative_path, pixels in readable_images(root, relative_paths, size, grayscale, skipped):
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
        class_label=np.array([class_of(p) for p in kept], dtype=str),
        ids=np.array(kept, dtype=str),
        skipped=skipped,
    )

