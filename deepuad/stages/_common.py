"""What every stage shares: progress reporting, paths and default output names, input
checks, device and thread set-up, skipping an up-to-date artifact (``deepuad run``), a DeepUAD
from a model artifact (for scoring, and ``DeepUAD.load``) and ``DeepUAD.save``, through the model
artifact's writer and reader (``deepuad.artifacts.model``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Callable

import numpy as np

from deepuad import artifacts as art
from deepuad.artifacts import model as model_artifact
from deepuad.errors import DeepUADError, DeviceError, InputError, OutputError, ParamError, RequestError
from deepuad.estimators.params import SPEC, check_contamination, from_record


# progress(description, completed, total, status=None, line=None): ``status`` (the current loss)
# is shown beside a terminal's bar; ``line`` (one per re-selection) is what a log gets instead
Progress = Callable[..., None]


def no_progress(description: str, completed: int, total: int, status: str | None = None, line: str | None = None) -> None:
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


def recorded_file(artifact_path, inputs: dict, role: str) -> Path | None:
    """The ``role`` file an artifact records among its inputs, where it is now: at the path
    recorded, else beside the artifact (the two were moved together); None if neither is there
    or the record is not a path."""
    source = inputs.get(role) if isinstance(inputs, dict) else None
    recorded = source.get("path") if isinstance(source, dict) else None
    if not isinstance(recorded, str) or not recorded:
        return None
    for candidate in (Path(recorded), Path(artifact_path).parent / Path(recorded).name):
        with contextlib.suppress(OSError, ValueError):
            if candidate.is_file():
                return candidate
    return None


def command_inputs(paths) -> dict[Path, str]:
    """Every file a command may read, each with how it comes to be read: the paths it was
    given, and the files each deepuad artifact among them records as its inputs (top reads the
    features and the model its scores file records, evaluate the model). A path that is not a
    readable artifact contributes only itself: the command's own reading reports what is
    wrong with it."""
    found: dict[Path, str] = {}
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        found.setdefault(path, "given on the command line")
        try:
            with art.open_artifact(path) as f:
                inputs = art.inputs_of(f)
        except DeepUADError:
            continue
        for role in inputs if isinstance(inputs, dict) else ():
            recorded = recorded_file(path, inputs, role)
            if recorded is not None:
                found.setdefault(recorded, f"the {role} file that {path} records")
    return found


def check_not_an_input(output, paths) -> None:
    """OutputError (exit 6) when ``output`` (a file or a folder) is one of ``command_inputs(paths)``,
    or a folder holding one: writing it would destroy what the command reads. Run before any work."""
    if output is None:
        return
    for source, how in command_inputs(paths).items():
        if art.is_same_or_inside(output, source):
            inside = source.is_dir() and Path(output).resolve() != source.resolve()
            problem = f"lies inside {source}, an input of this command ({how})" if inside \
                else f"is also an input of this command ({source}, {how})"
        elif art.is_same_or_inside(source, output):
            problem = f"is a folder that holds an input of this command ({source}, {how})"
        else:
            continue
        raise OutputError(f"{problem}; writing there would destroy it: choose another output name", output)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"`device` {device} asked for, but no CUDA GPU is available (use `device` cpu or auto)")
        return device
    raise ParamError("device", f"must be auto, cpu or cuda[:N], got {device!r}")


MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))


def check_threads(threads: int | None, processes_per_node: int = 1) -> int:
    """The thread count to use, or ParamError. Default: 1 thread on machines with <= 2 cores
    (spinning OpenMP threads make a small net many times slower when another process shares the CPU),
    else half the cores, at most 8, shared by the processes torchrun started on this node."""
    if threads is None:
        cores = os.cpu_count() or 1
        threads = 1 if cores <= 2 else max(1, min(8, cores // 2) // processes_per_node)
    if not 1 <= threads <= MAX_THREADS:  # OpenMP segfaults creating 100,000 threads
        raise ParamError("threads", f"must be between 1 and {MAX_THREADS}, got {threads}")
    return threads


def set_threads(threads: int | None, processes_per_node: int = 1) -> int:
    """Pin torch and BLAS thread pools to ``check_threads``' count."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = check_threads(threads, processes_per_node)
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


def skipped(output) -> dict:
    return {"output": str(output), "skipped": True, "reason": "up to date (same parameters and inputs)"}


def check_threshold_options(contamination, threshold) -> None:
    if contamination is not None and threshold is not None:
        raise RequestError("give `contamination` or `threshold`, not both")
    if contamination is not None:
        check_contamination(contamination)
    if threshold is not None and not np.isfinite(threshold):
        raise ParamError("threshold", f"must be a finite number, got {threshold}")


def detector_params(recorded: dict) -> dict:
    """The DeepUAD parameters (but ``device``) that a model artifact's ``params`` record, by name:
    what ``load_model`` and ``train --resume`` build the detector with."""
    return {name: value for name, value in from_record("model", recorded).items() if SPEC[name].estimator and name != "device"}


def load_model(path, device="cpu", content=None):
    """(DeepUAD ready to score, artifact attributes) from a model artifact (``content``: what
    ``model_artifact.read`` gave for it, when already read); never unpickles."""
    from deepuad.estimators.detector import DeepUAD

    arrays, state, _, meta = content or model_artifact.read(path)
    params, architecture = meta["params"], meta["architecture"]
    for name, values in arrays.items():
        if name.startswith("weights/"):
            model_artifact.check_finite_weights(name, values, path)
    detector = DeepUAD(**detector_params(params), device=device)
    detector.layers, detector.activation = tuple(architecture["layers"]), architecture["activation"]
    try:
        detector.set_state((arrays, state), int(architecture["n_features"]), meta["n_rows"], with_optimizer=False)
    except RuntimeError as error:  # torch's load_state_dict: a weight's shape is not the architecture's
        raise InputError(f"model weights are inconsistent with its architecture (corrupt?): {error}", path) from None
    except (KeyError, ValueError) as error:  # a selection, the scorer or its forest (set_state's checks)
        raise InputError(f"model state is inconsistent (corrupt?): {error}", path) from None
    return detector, meta


def load_scorer(path, device="cpu"):
    """(what scores the rows, artifact attributes) for answering which rows and why: when no part
    of a finished model's score needs the network (``knn``, ``iforest`` alone), its
    ``scorer.Scorer``, which scores with NumPy alone and never imports torch; else
    ``load_model``'s DeepUAD."""
    from deepuad.estimators.parts import needs_network
    from deepuad.estimators.scorer import Scorer

    content = model_artifact.read(path)
    arrays, state, _, meta = content
    parts = tuple(state.get("score_parts") or ())
    if not meta["complete"] or not parts or needs_network(parts):
        return load_model(path, device, content)
    params = detector_params(meta["params"])
    try:
        scorer = Scorer.restore(params["score"], parts, arrays, int(meta["architecture"]["n_features"]),
                                int(params["n_neighbors"]))
    except (KeyError, ValueError) as error:  # the scorer or its forest (Scorer.restore's checks)
        raise InputError(f"model state is inconsistent (corrupt?): {error}", path) from None
    return scorer, meta


def save_model(detector, path) -> None:
    """``DeepUAD.save``: a fitted DeepUAD -> a complete model artifact, written atomically. It
    records every parameter and the training rows' scores (``load_fitted`` restores the threshold
    from them), no input files and no encoding: a model fitted on an array in Python has
    neither, so ``deepuad score`` takes it for a features file only with --force."""
    params = {name: list(value) if isinstance(value, tuple) else value for name, value in detector.get_params().items()}
    model_artifact.write_detector(path, detector, params, len(detector.decision_scores_), complete=True,
                                  training_scores=detector.decision_scores_)


def load_fitted(path, device="cpu"):
    """``DeepUAD.load``: ``load_model``'s detector with what ``fit`` sets beyond the network and
    scorer: every recorded parameter, ``stop_reason_`` and, where the model holds its training
    rows' scores, ``decision_scores_``, ``threshold_`` and ``labels_``
    (``predict`` needs them; a model from a multi-process training has no such scores)."""
    detector, meta = load_model(path, device, model_artifact.read(path, training_scores=True))
    if not meta["complete"]:
        raise InputError("is a checkpoint of an unfinished training run: finish it with 'deepuad train `resume`'", path)
    names = set(detector.get_params()) - {"device"}
    detector.set_params(**{name: tuple(value) if isinstance(value, list) else value
                           for name, value in meta["params"].items() if name in names})
    detector.stop_reason_ = meta["stop_reason"]
    if meta["training_scores"] is not None:
        detector.decision_scores_ = meta["training_scores"].astype(np.float64)
        detector._process_decision_scores()
    return detector
