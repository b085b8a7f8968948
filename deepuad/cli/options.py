"""Option definitions that several commands share (``run`` reuses every stage option it offers,
help text included), and the parsers of option values."""

from __future__ import annotations

import inspect
import re
from typing import Optional

import typer

from deepuad.errors import UsageError
from deepuad.estimators.params import DEFAULTS, LIMITS  # standard library only: no NumPy or torch at start-up



JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (the summary) on stdout instead of tables.")


# NumPy and scikit-learn take seeds in [0, 2**32): refused here, not blamed on a file later
SEED_OPTION = typer.Option(DEFAULTS["seed"], "--seed", min=0, max=2**32 - 1, help="Random seed: same inputs + seed => same results on CPU.")


DEVICE_OPTION = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")


THREADS_OPTION = typer.Option(
    None, "--threads", help="CPU threads for torch/BLAS. Default: 1 on machines with <= 2 cores, else half the cores (max 8)."
)


PAPER_OPTION = typer.Option(
    False, "--paper", help="The paper's literal reading: percentile over clusters for both selections, tol 0 and the cosine "
    "score (overrides --percentile-over, --tol and --score).")


CLUSTER_PAPER_OPTION = typer.Option(
    False, "--paper", help="The paper's literal reading of the initial selection: percentile over clusters (overrides --percentile-over).")


PERCENTILE_OPTION = typer.Option(
    DEFAULTS["percentile_over"], "--percentile-over",
    help="samples: keep the lowest-variance clusters until they cover at least (100-p)% of the rows (default: measured better); "
    "clusters: keep clusters below the (100-p)th percentile of the cluster variances (the paper's literal words).",
)


RESELECT_BY_OPTION = typer.Option(
    DEFAULTS["reselect_by"], "--reselect-by",
    help="trim: keep the rows whose score under the current network is at most --trim-cutoff interquartile ranges above its "
    "upper quartile (with --cluster-cutoff: and drop the clusters of a GMM on z = [code; error] that stand out as a whole); "
    "variance (the paper's): a GMM on z = [code; error], keeping the low-variance clusters; "
    "error: keep the rows whose reconstruction error is below the (100-p)th percentile (cannot win back a normal mode "
    "the initial clustering left out; see docs/fidelity.md).",
)


SCORE_OPTION = typer.Option(
    DEFAULTS["score"], "--score",
    help="distance+forest: the mean robust z-score of the log squared reconstruction error (the network learns the "
    "kept rows), the log distance to the 5 nearest distinct rows and an isolation forest (on a sample of all rows), "
    "plus how many fenced ranges a row lies beyond the rows in its farthest column; distance: the same without the forest; combined: the log squared error "
    "(weight 1) and the forest (weight 2); cosine: the paper's 1 - cos(x, x_hat); l2, iforest, knn: one part alone.")


BATCH_SIZE_OPTION = typer.Option(DEFAULTS["batch_size"], "--batch-size", help="Rows per step; auto: n/16 between 32 and 1024.")


LAYERS_OPTION = typer.Option(DEFAULTS["layers"], "--layers", help="Encoder widths, e.g. 60,30,10 (the decoder mirrors them); auto: d/2, d/4 (at most 64, 32).")


INIT_BY_OPTION = typer.Option(
    DEFAULTS["init_by"], "--init-by",
    help="The first training set. variance (the paper's): the low-variance clusters covering (100-p0)% of the rows; "
    "trim: the rows whose outlyingness (log distance to their 5 nearest rows, log largest per-column deviation) is at "
    "most --trim-cutoff interquartile ranges above its upper quartile, and with --cluster-cutoff the clusters that do not stand out whole.")
TRIM_CUTOFF_OPTION = typer.Option(
    DEFAULTS["trim_cutoff"], "--trim-cutoff", help="trim: keep rows whose outlyingness is at most this many interquartile ranges above its upper quartile (Tukey's fence).")
CLUSTER_CUTOFF_OPTION = typer.Option(
    DEFAULTS["cluster_cutoff"], "--cluster-cutoff",
    help="trim: also drop each cluster whose median outlyingness lies this many interquartile ranges above the upper quartile [default: none].")


RESELECT_SAMPLE_OPTION = typer.Option(
    DEFAULTS["reselect_fit_sample"], "--reselect-sample", help="Fit the re-selection GMM on this many random rows and assign every row (0 = fit on all rows).")


def _csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _id_columns(values: Optional[list[str]]) -> list[str]:
    """--id-column, repeated and/or comma-separated."""
    return [column for value in values or [] for column in _csv(value)]


def _layers(value: str) -> tuple[int, ...] | str:
    if value == "auto":
        return value
    try:
        layers = tuple(int(v) for v in _csv(value))
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers like 60,30,10, got {value!r}") from None
    if not layers or min(layers) < 1:
        raise UsageError(f"--layers must be positive widths like 60,30,10, got {value!r}")
    if len(layers) > LIMITS["layers"] or max(layers) > LIMITS["layer_width"]:
        raise UsageError(f"--layers takes at most {LIMITS['layers']} widths of at most {LIMITS['layer_width']:,}, got {value!r}")
    weights = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    if weights > LIMITS["hidden_weights"]:
        raise UsageError(f"--layers {value} needs {weights:,} weights between its layers (at most {LIMITS['hidden_weights']:,})")
    return layers


def _size(value: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 32x32 (height x width), got {value!r}") from None
    if height < 1 or width < 1:
        raise UsageError(f"--size must be positive, got {value!r}")
    if max(height, width) > LIMITS["image_side"]:
        raise UsageError(f"--size is at most {LIMITS['image_side']} pixels a side, got {value!r}")
    return height, width


def _thres(value: str):
    if value == "auto":
        return "auto"
    try:
        thres = float(value)
    except ValueError:
        raise UsageError(f"--thres must be a positive number or 'auto', got {value!r}") from None
    if not thres > 0:
        raise UsageError(f"--thres must be positive, got {value!r}")
    return thres


def _batch_size(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        size = int(value)  # its lower bound is checked with the other parameters (DeepUAD.check_params)
    except ValueError:
        raise UsageError(f"--batch-size must be 'auto' or a positive integer, got {value!r}") from None
    if size > LIMITS["batch_rows"]:
        raise UsageError(f"--batch-size is at most {LIMITS['batch_rows']:,} rows, got {value!r}")
    return size


def _train_options(training: dict, min_fraction, seed, precision=DEFAULTS["precision"], compile=DEFAULTS["compile"],
                   score=DEFAULTS["score"], paper=False) -> dict:
    """DeepUAD's parameters from the command line's: ``training`` holds the options of
    ``with_training_options``."""
    from deepuad.estimators.params import PAPER_READING

    t = dict(training)
    if t["r"] >= 1 and t["epochs"] // t["r"] > LIMITS["reselections"]:  # each one a record the model keeps
        raise UsageError(f"--epochs {t['epochs']} with --r {t['r']} asks for {t['epochs'] // t['r']:,} re-selections "
                         f"(at most {LIMITS['reselections']:,}); raise --r")
    percentile_over, tol = t["percentile_over"], t["tol"]
    if paper:
        percentile_over, tol, score = PAPER_READING["percentile_over"], PAPER_READING["tol"], PAPER_READING["score"]
    return dict(precision=precision, compile=compile, score=score,
        p=t["p"], r=t["r"], epochs=t["epochs"], batch_size=_batch_size(t["batch_size"]), lr=t["lr"], layers=_layers(t["layers"]),
        activation=t["activation"], loss=t["loss"], reselect_by=t["reselect_by"], reselect_clusters=t["reselect_clusters"],
        reselect_fit_sample=t["reselect_sample"] or None, percentile_over=percentile_over, tol=tol, min_fraction=min_fraction,
        seed=seed, trim_cutoff=t["trim_cutoff"], cluster_cutoff=t["cluster_cutoff"],
    )


def _shard(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", value.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise UsageError(f"--shard must be I/N with 0 <= I < N, e.g. 0/4, got {value!r}")
    return int(match[1]), int(match[2])


# used by a stage command and by run (one definition, help included)
LABEL_COLUMN_OPTION = typer.Option(None, "--label-column", help="Ground-truth column: stored as y, never used as a feature.")
ANOMALY_VALUES_OPTION = typer.Option(None, "--anomaly-values", help="Comma-separated label values meaning anomaly (0/1 labels need none).")
CATEGORICAL_OPTION = typer.Option(None, "--categorical", help="Comma-separated columns to one-hot even if numeric.")
DROP_OPTION = typer.Option(None, "--drop", help="Comma-separated columns to ignore.")
MISSING_OPTION = typer.Option(
    None, "--missing", help="A gap (empty cell, null, NaN): error (refuse it), drop (leave its row out; rows listed in the "
    "summary and the features file) or fill (a numeric column's median; a gap in a text column is a category of its own) "
    "[default: error; with --like: the features file's].")
ID_COLUMN_OPTION = typer.Option(
    None, "--id-column", help="A column that identifies rows and is no feature (a host name, a timestamp): carried as text "
    "to the scores, top and explain. Repeat it, or separate columns with commas.")
SCALE_OPTION = typer.Option(None, "--scale", help="minmax, standard or none [default: minmax for tables and arrays, none for pixels and video].")
METHOD_OPTION = typer.Option(DEFAULTS["init_method"], "--method", help="gmm, kmeans, hdbscan or distribution.")
CLUSTERS_OPTION = typer.Option(DEFAULTS["init_clusters"], "--clusters", max=LIMITS["clusters"], help="gmm/kmeans: number of clusters/components.")
P0_OPTION = typer.Option(DEFAULTS["p0"], "--p0", help="Initial threshold in percent: clusters above the (100-p0)th variance percentile are left out.")
MIN_FRACTION_OPTION = typer.Option(DEFAULTS["min_fraction"], "--min-fraction", help="Guard: if fewer rows than this share are selected, add clusters in increasing variance (warned, recorded as fallback).")
P_OPTION = typer.Option(DEFAULTS["p"], "--p", help="Re-selection threshold in percent (p < p0).")
R_OPTION = typer.Option(DEFAULTS["r"], "--r", "--reselect-every", help="Re-select the training set every r epochs (under torchrun write --reselect-every: torchrun takes --r for its own --rdzv-* options).")
EPOCHS_OPTION = typer.Option(DEFAULTS["epochs"], "--epochs", help="Epoch budget.")
LR_OPTION = typer.Option(DEFAULTS["lr"], "--lr", help="Adam learning rate.")
ACTIVATION_OPTION = typer.Option(DEFAULTS["activation"], "--activation", help="tanh (tabular data) or relu.")
LOSS_OPTION = typer.Option(DEFAULTS["loss"], "--loss", help="Training loss: mse or cosine.")
RESELECT_CLUSTERS_OPTION = typer.Option(DEFAULTS["reselect_clusters"], "--reselect-clusters", max=LIMITS["clusters"], help="--reselect-by variance: GMM components on z = [code; error].")
TOL_OPTION = typer.Option(DEFAULTS["tol"], "--tol", help="Converged when at most tol x N indices change between re-selections (0 = the paper's literal 'no change').")
CONTAMINATION_OPTION = typer.Option(None, "--contamination", help="Flag this share of rows as anomalies [default: the share of training rows the model's rule flagged: more than 3 robust sigmas above the median score].")


# the training options of train that run offers too: (parameter, type, option)
TRAINING_OPTIONS = [
    ("p", float, P_OPTION), ("r", int, R_OPTION), ("epochs", int, EPOCHS_OPTION), ("batch_size", str, BATCH_SIZE_OPTION),
    ("lr", float, LR_OPTION), ("layers", str, LAYERS_OPTION), ("activation", str, ACTIVATION_OPTION), ("loss", str, LOSS_OPTION),
    ("reselect_by", str, RESELECT_BY_OPTION), ("reselect_clusters", int, RESELECT_CLUSTERS_OPTION),
    ("reselect_sample", int, RESELECT_SAMPLE_OPTION), ("percentile_over", str, PERCENTILE_OPTION), ("tol", float, TOL_OPTION),
    ("trim_cutoff", float, TRIM_CUTOFF_OPTION), ("cluster_cutoff", Optional[float], CLUSTER_CUTOFF_OPTION),
]


def with_training_options(after: str):
    """Add TRAINING_OPTIONS to a command's signature, after its parameter ``after`` (typer reads
    the signature); the command receives them in its ``**training``. One definition serves
    ``train`` and ``run``, help text included."""
    def decorate(function):
        signature = inspect.signature(function)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        at = [p.name for p in own].index(after) + 1
        added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=kind)
                 for name, kind, option in TRAINING_OPTIONS]
        function.__signature__ = signature.replace(parameters=own[:at] + added + own[at:])
        return function
    return decorate


# the options that only some methods use (their help text starts "gmm/kmeans: ...", "ae: ..."):
# option -> the methods that use it. Given with another method, such an option would be ignored.
CLUSTER_METHOD_OPTIONS = {
    "--clusters": ("gmm", "kmeans"), "--covariance": ("gmm",), "--fit-sample": ("gmm", "kmeans", "hdbscan"),
    "--thres": ("distribution",), "--min-clus": ("distribution",), "--max-dist": ("distribution",),
    "--dc-normalize": ("distribution",), "--anchors": ("distribution",), "--neighbors": ("distribution",),
    "--sample": ("distribution",), "--min-cluster-size": ("hdbscan",),
}
BASELINE_METHOD_OPTIONS = {
    "--epochs": ("ae", "dagmm"), "--batch-size": ("ae", "dagmm"), "--lr": ("ae", "dagmm"), "--layers": ("ae",),
    "--activation": ("ae",), "--max-train-samples": ("ocsvm",),
}


def refuse_unused(ctx: typer.Context, method: str, uses: dict[str, tuple[str, ...]]) -> None:
    """UsageError for an option typed on the command line that ``--method METHOD`` does not use:
    ignored, it would leave a run that is not the one asked for."""
    for param in ctx.command.params:
        option = next((name for name in param.opts if name in uses), None)
        if option and method not in uses[option] and ctx.get_parameter_source(param.name).name == "COMMANDLINE":
            raise UsageError(f"{option} applies to --method {' or '.join(uses[option])} only, not {method}")


def check_option(option: str, value, test, requirement: str) -> None:
    """UsageError "<option> must be <requirement>, got <value>" unless ``test(value)``."""
    if not test(value):
        raise UsageError(f"{option} must be {requirement}, got {value!r}")
