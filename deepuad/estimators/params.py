"""The parameters that several layers share (estimators, stages, command-line options, artifact
readers), each declared once here: DeepUAD's defaults, which C(X, p0) (``selection``), the
``cluster`` stage and the command-line options take too, the baselines' and the clustering
methods' defaults, and the one range of ``contamination``; ``check_value`` applies any
(test, what the value must be) constraint of the estimators' tables, with one message form.

Imports nothing but the standard library: the command line builds its options from these
defaults when it starts, and it starts without NumPy, scikit-learn or torch (seconds).
"""

from __future__ import annotations

import numbers
import os

from deepuad.errors import UsageError

# DeepUAD's defaults (the paper's Table 8, KDDCUP; docs/fidelity.md for the readings): its
# ``__init__`` signature takes them from here, and so do initial_selection, the stages and the
# options of ``cluster``, ``train`` and ``run``
DEFAULTS = {
    "p0": 35.0,
    "p": 30.0,
    "r": 10,
    "epochs": 100,
    "batch_size": "auto",
    "lr": 1e-3,
    "layers": "auto",
    "activation": "tanh",
    "loss": "mse",
    "init_method": "gmm",
    "init_clusters": 20,
    "reselect_clusters": 20,
    "reselect_fit_sample": 20000,
    "percentile_over": "samples",
    "reselect_by": "variance",
    "tol": 0.05,
    "min_fraction": 0.01,
    "precision": "32",
    "compile": False,
    "seed": 0,
    "score": "distance+forest",  # parts.SCORES says what each score combines
    "n_neighbors": 5,  # score part "knn": the mean distance to this many nearest distinct reference rows
    "reference_size": 2000,
    "init_by": "variance",  # the first training set: "variance" (the paper's low-variance clusters) or "trim"
    "trim_cutoff": 1.5,  # trim: keep rows at most this many IQRs above the upper quartile of outlyingness (Tukey's fence)
    "cluster_cutoff": None,  # trim: also drop a cluster whose median outlyingness is beyond such a fence (None: no)
}

# the hidden layers' activations (``activation``): autoencoder.ACTIVATIONS maps them to torch's
ACTIVATIONS = ("tanh", "relu")

# rows scored per batch by ``score`` and ``explain``: shards are cut at multiples of it
# (artifacts.shard.shard_rows), so shards and the unsharded run they equal must share it
SCORE_BATCH_ROWS = 16384

# The paper's literal reading (docs/fidelity.md): DeepUAD(**PAPER_READING), `--paper` on the
# command line (cluster and train)
PAPER_READING = {"percentile_over": "clusters", "tol": 0.0, "score": "cosine"}

# the baselines' defaults that the ``baseline`` command offers as options too (the autoencoder
# baseline's lr, activation and loss are DeepUAD's)
BASELINE_DEFAULTS = {
    "contamination": 0.1,
    "batch_size": 1024,
    "layers": (60, 30, 10),  # the autoencoder's: the paper's KDDCUP network
    "max_train_samples": 10000,  # OC-SVM (baselines.OCSVMDetector says why)
}
# the ``baseline`` command's epochs and learning rate of the two networks. `--method dagmm` trains
# 100 epochs unless told otherwise, not DAGMMDetector's 200 (its paper's): the command's default
# since it was added, recorded in its artifacts
BASELINE_EPOCHS = {"ae": 200, "dagmm": 100}
BASELINE_LR = {"ae": DEFAULTS["lr"], "dagmm": 1e-4}

# the initial clustering methods' own options (clustering.METHODS), taken by their functions, by
# DistributionClustering and by the options of ``cluster``
CLUSTERING_DEFAULTS = {
    "covariance_type": "diag",  # gmm: full covariance fails on one-hot data
    "reg_covar": 1e-4,
    "init_sample": 20000,  # gmm: its k-means initialisation on at most this many rows (mixture.py says why)
    "min_cluster_size": 5,  # hdbscan (the paper's Table 6)
    "thres": 0.1,  # distribution clustering, from here on
    "min_clus": 7,
    "max_dist": 1.4,
    "normalize": "l2",
    "n_anchors": 1024,
    "n_neighbors": 20,
}

# the most a contamination may be: more than half the rows "anomalous" would make the normal
# rows the anomalies
MAX_CONTAMINATION = 0.5


def is_contamination(value) -> bool:
    """The one test of a contamination (the share of rows flagged as anomalies): a number in
    (0, 0.5]. Estimators, stages and artifact readers all ask this one."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 < value <= MAX_CONTAMINATION


# (test, what the value must be), in the form of the estimators' ``_parameter_checks`` tables
CONTAMINATION = (is_contamination, f"a number in (0, {MAX_CONTAMINATION}]")


def check_value(name: str, value, constraint) -> None:
    """ValueError "<name> must be <what>, got <value>" unless ``value`` passes ``constraint``, a
    (test, what the value must be) pair as in the estimators' tables (``what`` may be a function
    that says it). Callers translate the error: an option: exit 2; a file's content: exit 3."""
    test, requirement = constraint
    if not test(value):
        what = requirement() if callable(requirement) else requirement
        raise ValueError(f"{name} must be {what}, got {value!r}")


def check_contamination(value, name: str = "contamination") -> None:
    """``check_value`` of a contamination: "<name> must be a number in (0, 0.5], got <value>"."""
    check_value(name, value, CONTAMINATION)


# The most an option that sizes memory may ask for, checked where the option is parsed (exit 2,
# the message naming the limit): each allocation they size is linear in rows x the value, so a
# typo (--neighbors 100000000: a 745 GiB kNN table) fails at once instead of after the data is read.
LIMITS = {
    "clusters": 10_000,  # --clusters, --reselect-clusters: GMM/k-means components
    "neighbors": 1_024,  # --neighbors: the kNN table of distribution clustering holds rows x this
    "anchors": 16_384,  # --anchors: distance profiles hold rows x this
    "batch_rows": 1 << 22,  # --batch-size (training rows per step), --batch-rows (rows scored at once)
    "layer_width": 1 << 16,  # --layers: one width
    "layers": 64,  # --layers: how many
    "hidden_weights": 1 << 27,  # --layers: weights between hidden layers (x 16 bytes with Adam's moments: 2 GiB)
    "image_side": 4_096,  # --size: pixels a side
    "reselections": 1_000,  # --epochs // --r: a model keeps a record and a selection of each
}

# the environment torchrun gives each process (the defaults: no torchrun), and the largest world
TORCHRUN_VARIABLES = {"WORLD_SIZE": 1, "RANK": 0, "LOCAL_WORLD_SIZE": 1, "LOCAL_RANK": 0}
MAX_WORLD_SIZE = 1 << 16


def torchrun_environment() -> dict[str, int]:
    """WORLD_SIZE, RANK, LOCAL_WORLD_SIZE and LOCAL_RANK as whole numbers, or UsageError (exit 2)
    naming the variable: each in [0, MAX_WORLD_SIZE] (sizes from 1) and, in a world of more than
    one process, each rank below its size. Read here once for every reader (the CLI, World)."""
    values = {}
    for name, default in TORCHRUN_VARIABLES.items():
        text = os.environ.get(name, str(default)).strip()
        value = int(text) if text.isdigit() and len(text) <= 9 else -1
        if not default <= value <= MAX_WORLD_SIZE:
            raise UsageError(f"environment variable {name} must be a whole number in [{default}, {MAX_WORLD_SIZE}], "
                             f"got {text[:40]!r}")
        values[name] = value
    if values["WORLD_SIZE"] > 1:
        for rank, size in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
            if values[rank] >= values[size]:
                raise UsageError(f"environment variable {rank}={values[rank]} is not below {size}={values[size]}")
    return values
