"""The ``deepuad`` command line: parse, validate, call a stage, report.

Exit codes (also in the README): see ``deepuad.errors``. Progress bars and warnings go to
stderr, summaries to stdout (one JSON object with ``--json``), so scripts can parse stdout.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deepuad import __version__
from deepuad.errors import (
    EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, DeepUADError, InputError, OutputError, Terminated,
    UsageError,
)

app = typer.Typer(
    name="deepuad",
    help="Deep end-to-end unsupervised anomaly detection, in stages: extract -> cluster -> train -> score.",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts say "[default: ...]": rich markup would swallow the brackets
)
def _stdout_closed() -> OutputError:
    """The error for a reader that went away (``deepuad inspect F | head -1``). Not an OSError:
    click turns a broken pipe into a silent exit 1, and rich into SystemExit(1)."""
    # the rest goes to /dev/null, so that Python's own flush at exit fails no more
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return OutputError("standard output was closed before all output was written (broken pipe)")


class _Console(Console):
    def on_broken_pipe(self) -> None:
        raise _stdout_closed()


def _emit(text: str) -> None:
    """One line on stdout (the --json summary)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        raise _stdout_closed() from None


stdout = _Console(soft_wrap=True)
stderr = _Console(stderr=True, soft_wrap=True)
state = {"quiet": False, "debug": False}

EXIT_HELP = "\n\n".join(f"{code}: {text}" for code, text in EXIT_CODES.items())


def _print_version(value: bool) -> None:
    # an eager option callback: runs before click asks for a subcommand, so `deepuad --version` works alone
    if value:
        stdout.print(f"deepuad {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars, warnings or summaries (errors still go to stderr)."),
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of unexpected errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
):
    """Deep end-to-end unsupervised anomaly detection (ICLR 2020 submission), in inspectable stages.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 input file, 4 data, 5 stale artifacts,
    6 output not writable, 7 device unavailable, 8 score --fail-above exceeded, 130 interrupted.
    """
    state["quiet"], state["debug"] = quiet, debug
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and ctx.invoked_subcommand != "train":
        # N copies of any other command would each do all the work and race for the same output
        raise UsageError(f"only 'train' runs under torchrun; run '{ctx.invoked_subcommand}' as one process "
                         "(score scales out with --shard I/N)")


# --------------------------------------------------------------------------- helpers
def _csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _layers(value: str) -> tuple[int, ...] | str:
    if value == "auto":
        return value
    try:
        layers = tuple(int(v) for v in _csv(value))
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers like 60,30,10, got {value!r}") from None
    if not layers or min(layers) < 1:
        raise UsageError(f"--layers must be positive widths like 60,30,10, got {value!r}")
    return layers


class _Reporter:
    """Rich progress on stderr; silent with --quiet or --json."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tasks: dict[str, int] = {}
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=stderr, transient=True,
        )

    def __enter__(self):
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()

    def __call__(self, description: str, completed: int, total: int) -> None:
        if not self.enabled:
            return
        if description not in self.tasks:
            self.tasks[description] = self.bar.add_task(description, total=total or None)
        self.bar.update(self.tasks[description], completed=completed, total=total or None)


def _run_stage(function, as_json: bool, title: str, **kwargs) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _Reporter(enabled=not state["quiet"] and not as_json) as reporter:
            summary = function(progress=reporter, **kwargs)
    for warning in caught:
        if not state["quiet"] and issubclass(warning.category, UserWarning):
            stderr.print(f"deepuad: warning: {warning.message}", markup=False, highlight=False)
    _report(summary, as_json, title)
    return summary


def strict_json(value) -> str:
    """``value`` as strict JSON: a NaN or infinity (a metric that is not defined, a marker
    stored in an artifact) becomes null, since a bare NaN is not JSON and breaks parsers."""
    return json.dumps(_finite_or_null(value), sort_keys=True, default=str, allow_nan=False)


def _finite_or_null(value):
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _report(summary: dict, as_json: bool, title: str) -> None:
    if as_json:
        _emit(strict_json(summary))
        return
    if state["quiet"]:
        return
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    stdout.print(table)


JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (the summary) on stdout instead of tables.")
# NumPy and scikit-learn take seeds in [0, 2**32): refused here, not blamed on a file later
SEED_OPTION = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed: same inputs + seed => same results on CPU.")
DEVICE_OPTION = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")
THREADS_OPTION = typer.Option(
    None, "--threads", help="CPU threads for torch/BLAS. Default: 1 on machines with <= 2 cores, else half the cores (max 8)."
)
PAPER_OPTION = typer.Option(
    False, "--paper", help="The paper's literal reading: percentile over clusters for both selections, tol 0 and the cosine "
    "score (overrides --percentile-over, --tol and --score).")
PERCENTILE_OPTION = typer.Option(
    "samples", "--percentile-over",
    help="samples: keep the lowest-variance clusters until they cover at least (100-p)% of the rows (default: measured better); "
    "clusters: keep clusters below the (100-p)th percentile of the cluster variances (the paper's literal words).",
)


# --------------------------------------------------------------------------- extract
EXTRACT_EXAMPLES = """Examples:

  deepuad extract kdd.csv --label-column label --anomaly-values normal.

  deepuad extract t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz --normal-class 4 --anomaly-ratio 0.05

  deepuad extract photos/ --size 32x32 --grayscale            (a folder of images; class = first sub-folder)

  deepuad extract photos/ --model resnet18.pt --size 224x224  (features from your TorchScript model)

  deepuad extract c3d/ --annotations Temporal_Anomaly_Annotation_for_Testing_Videos.txt --per-video
"""


def _size(value: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 32x32 (height x width), got {value!r}") from None
    if height < 1 or width < 1:
        raise UsageError(f"--size must be positive, got {value!r}")
    return height, width


@app.command(epilog=EXTRACT_EXAMPLES)
def extract(
    input: Path = typer.Argument(..., help="CSV/TSV with a header (.gz ok), Parquet or Arrow/Feather, .npy, .npz (X, optional y), MNIST IDX, a folder of images, or a folder of per-video feature files."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <input stem>.features.h5 beside the input]."),
    like: Optional[Path] = typer.Option(None, "--like", help="Encode exactly like this features file (same columns, vocabularies, scaler)."),
    input_type: str = typer.Option("auto", "--type", help="auto, table, numpy, idx, images or video."),
    categorical: Optional[str] = typer.Option(None, "--categorical", help="Comma-separated columns to one-hot even if numeric."),
    drop: Optional[str] = typer.Option(None, "--drop", help="Comma-separated columns to ignore."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="Ground-truth column: stored as y, never used as a feature."),
    anomaly_values: Optional[str] = typer.Option(None, "--anomaly-values", help="Comma-separated label values meaning anomaly (0/1 labels need none)."),
    scale: Optional[str] = typer.Option(None, "--scale", help="minmax, standard or none [default: minmax for tables and arrays, none for pixels and video]."),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", help="Rows read per chunk (memory bound for big CSVs)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of a CSV/TSV."),
    compress: bool = typer.Option(False, "--compress", help="gzip-compress X in the HDF5 file."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="MNIST: the labels IDX file (kept as class_label)."),
    size: str = typer.Option("32x32", "--size", help="Images: resize to HEIGHTxWIDTH."),
    grayscale: bool = typer.Option(False, "--grayscale", help="Images: convert to one channel."),
    model: Optional[Path] = typer.Option(None, "--model", help="Images: a TorchScript feature extractor (runs your model's code: only models you trust)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Video: UCF-Crime temporal annotation file; a segment overlapping an interval is an anomaly."),
    segment_frames: float = typer.Option(16.0, "--segment-frames", help="Video: frames per feature row (C3D: 16)."),
    per_video: bool = typer.Option(False, "--per-video", help="Video: one features file per video in folder -o (one model per video, as in the paper)."),
    normal_class: Optional[str] = typer.Option(None, "--normal-class", help="Labelled sets: this class is normal ..."),
    anomaly_ratio: Optional[float] = typer.Option(None, "--anomaly-ratio", help="... and the other classes are sampled evenly to this share of anomalies."),
    device: str = DEVICE_OPTION,
    seed: int = SEED_OPTION,
    as_json: bool = JSON_OPTION,
):
    """Turn raw data into a features file: X (float32), optional y, and the fitted encoding."""
    from deepuad import stages

    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be >= 1, got {chunk_rows}")
    _run_stage(
        stages.extract, as_json, "extract", input_path=input, output=output, like=like, input_type=input_type,
        categorical=_csv(categorical), drop=_csv(drop), label_column=label_column,
        anomaly_values=_csv(anomaly_values) or None, scale=scale, chunk_rows=chunk_rows, text_encoding=encoding,
        compress=compress, labels=labels, size=_size(size), grayscale=grayscale, model=model, device=device,
        annotations=annotations, segment_frames=segment_frames, per_video=per_video, normal_class=normal_class,
        anomaly_ratio=anomaly_ratio, seed=seed,
    )


# --------------------------------------------------------------------------- cluster
CLUSTER_HELP = """Initial clustering: choose the first 'normal' training set from low-variance clusters.

Methods: gmm (default; the paper's choice for tabular data), kmeans, hdbscan, and distribution
(distribution clustering, Lin et al. CVPR 2018: the paper's choice for image and video
features). Distribution clustering finds the number of clusters itself and leaves outliers
unclustered; its three parameters, in plain words:

--thres: how alike two points' distance profiles (their distances to everything else) must
be to count as samples of the same distribution. Too small and almost nothing clusters (most
rows stay unclustered); too large and distinct distributions merge. Calibrate it with
--thres auto: the median nearest-neighbour profile distance, i.e. the noise floor two samples
of one distribution show (then look at 'unclustered' in the summary and adjust).

--min-clus: a cluster needs more than this many points; smaller groups stay unclustered.

--max-dist: stop seeding new clusters once the closest remaining pair of unclustered points is
at least this far apart (squared distance on unit vectors, so between 0 and 4).

Paper values (Table 9): MNIST 0.1/7/1.4, CIFAR-10 and cats-vs-dogs 0.06/5/1.4, video 0.05/4/1.5.
"""


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


@app.command(help=CLUSTER_HELP, epilog="Examples: deepuad cluster kdd.features.h5 --p0 35 ; deepuad cluster cifar.features.h5 --method distribution --thres 0.06 --min-clus 5 --max-dist 1.4")
def cluster(
    features: Path = typer.Argument(..., help="A features file from 'deepuad extract'."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <stem>.clusters.h5]."),
    p0: float = typer.Option(35.0, "--p0", help="Initial threshold in percent: clusters above the (100-p0)th variance percentile are left out."),
    method: str = typer.Option("gmm", "--method", help="gmm, kmeans, hdbscan or distribution."),
    clusters: int = typer.Option(20, "--clusters", help="gmm/kmeans: number of clusters/components."),
    percentile_over: str = PERCENTILE_OPTION,
    min_fraction: float = typer.Option(0.01, "--min-fraction", help="Guard: if fewer rows than this share are selected, add clusters in increasing variance (warned, recorded as fallback)."),
    covariance: str = typer.Option("diag", "--covariance", help="gmm: covariance type: diag (robust on one-hot data), full, tied, spherical."),
    fit_sample: Optional[int] = typer.Option(None, "--fit-sample", help="gmm/kmeans/hdbscan: fit on a random sample of this many rows (gmm/kmeans then assign all rows in chunks)."),
    thres: str = typer.Option("0.1", "--thres", help="distribution: profile-distance threshold, or 'auto'."),
    min_clus: int = typer.Option(7, "--min-clus", help="distribution: a cluster needs more than this many points."),
    max_dist: float = typer.Option(1.4, "--max-dist", help="distribution: stop seeding at this seed distance."),
    dc_normalize: str = typer.Option("l2", "--dc-normalize", help="distribution: l2, center-l2 or none."),
    anchors: int = typer.Option(1024, "--anchors", help="distribution: anchor rows for distance profiles."),
    neighbors: int = typer.Option(20, "--neighbors", help="distribution: kNN graph size for seeding."),
    sample: Optional[int] = typer.Option(None, "--sample", help="distribution: cluster this many random rows, assign the rest out of sample."),
    min_cluster_size: int = typer.Option(5, "--min-cluster-size", help="hdbscan: minimum cluster size."),
    paper: bool = PAPER_OPTION,
    seed: int = SEED_OPTION,
    as_json: bool = JSON_OPTION,
):
    from deepuad import stages
    from deepuad.detector import PAPER_READING

    percentile_over = PAPER_READING["percentile_over"] if paper else percentile_over
    options = {"covariance_type": covariance, "fit_sample": fit_sample, "min_cluster_size": min_cluster_size}
    if method == "distribution":
        options.update(thres=_thres(thres), min_clus=min_clus, max_dist=max_dist, normalize=dc_normalize,
                       n_anchors=anchors, n_neighbors=neighbors, sample=sample)
    _run_stage(
        stages.cluster, as_json, "cluster", features_path=features, output=output, method=method, n_clusters=clusters,
        p0=p0, percentile_over=percentile_over, min_fraction=min_fraction, seed=seed, method_options=options,
    )


# --------------------------------------------------------------------------- train
def _batch_size(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)  # its range is checked with the other parameters (DeepUAD.check_params)
    except ValueError:
        raise UsageError(f"--batch-size must be 'auto' or a positive integer, got {value!r}") from None


def _train_options(p, r, epochs, batch_size, lr, layers, activation, loss, reselect_by, reselect_clusters, reselect_sample,
                   percentile_over, tol, min_fraction, seed, precision="32", compile=False, score="combined",
                   paper=False) -> dict:
    from deepuad.detector import PAPER_READING

    if paper:
        percentile_over, tol, score = PAPER_READING["percentile_over"], PAPER_READING["tol"], PAPER_READING["score"]
    return dict(precision=precision, compile=compile, score=score,
        p=p, r=r, epochs=epochs, batch_size=_batch_size(batch_size), lr=lr, layers=_layers(layers), activation=activation, loss=loss,
        reselect_by=reselect_by, reselect_clusters=reselect_clusters, reselect_fit_sample=reselect_sample or None,
        percentile_over=percentile_over, tol=tol, min_fraction=min_fraction, seed=seed,
    )


RESELECT_BY_OPTION = typer.Option(
    "variance", "--reselect-by",
    help="variance (the paper's): a GMM on z = [code; error], keeping the low-variance clusters; "
    "error: keep the rows whose reconstruction error is below the (100-p)th percentile (cannot win back a normal mode "
    "the initial clustering left out; see README).",
)
SCORE_OPTION = typer.Option(
    "combined", "--score",
    help="combined: mean robust z-score of the log squared reconstruction error and an isolation forest grown on the kept "
    "rows (sees direction and magnitude); cosine: the paper's 1 - cos(x, x_hat); l2, iforest, knn (mean distance to the "
    "5 nearest kept rows): one part alone.")
BATCH_SIZE_OPTION = typer.Option("auto", "--batch-size", help="Rows per step; auto: n/16 between 32 and 1024.")
LAYERS_OPTION = typer.Option("auto", "--layers", help="Encoder widths, e.g. 60,30,10 (the decoder mirrors them); auto: d/2, d/4 (at most 64, 32).")
RESELECT_SAMPLE_OPTION = typer.Option(
    20000, "--reselect-sample", help="Fit the re-selection GMM on this many random rows and assign every row (0 = fit on all rows).")


@app.command(epilog="Example: deepuad train kdd.features.h5 kdd.clusters.h5 --p 30 --r 10 --epochs 200 --layers 60,30,10")
def train(
    features: Path = typer.Argument(..., help="The features file the clusters were made from."),
    clusters: Path = typer.Argument(..., help="The clusters file from 'deepuad cluster'."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output model file [default: <stem>.model.h5]."),
    p: float = typer.Option(30.0, "--p", help="Re-selection threshold in percent (p < p0)."),
    r: int = typer.Option(10, "--r", "--reselect-every", help="Re-select the training set every r epochs (under torchrun write --reselect-every: torchrun takes --r for its own --rdzv-* options)."),
    epochs: int = typer.Option(100, "--epochs", help="Epoch budget."),
    batch_size: str = BATCH_SIZE_OPTION,
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate."),
    layers: str = LAYERS_OPTION,
    activation: str = typer.Option("tanh", "--activation", help="tanh (tabular data) or relu."),
    loss: str = typer.Option("mse", "--loss", help="Training loss: mse or cosine."),
    reselect_by: str = RESELECT_BY_OPTION,
    reselect_clusters: int = typer.Option(20, "--reselect-clusters", help="--reselect-by variance: GMM components on z = [code; error]."),
    reselect_sample: int = RESELECT_SAMPLE_OPTION,
    percentile_over: str = PERCENTILE_OPTION,
    tol: float = typer.Option(0.05, "--tol", help="Converged when at most tol x N indices change between re-selections (0 = the paper's literal 'no change')."),
    min_fraction: float = typer.Option(0.01, "--min-fraction", help="Guard against a tiny training set (share of rows)."),
    score: str = SCORE_OPTION,
    paper: bool = PAPER_OPTION,
    device: str = DEVICE_OPTION,
    precision: str = typer.Option("32", "--precision", help="32 (default, exact resume), bf16 or 16 (mixed precision, for GPUs)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the network (pays off on GPUs and long runs)."),
    threads: Optional[int] = THREADS_OPTION,
    seed: int = SEED_OPTION,
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in the output file."),
    force: bool = typer.Option(False, "--force", help="Use a clusters file made from other features anyway."),
    as_json: bool = JSON_OPTION,
):
    """Algorithm 1: train the autoencoder, re-selecting the training set every r epochs until it stops changing."""
    from deepuad import stages

    options = _train_options(p, r, epochs, batch_size, lr, layers, activation, loss, reselect_by, reselect_clusters,
                             reselect_sample, percentile_over, tol, min_fraction, seed, precision, compile, score, paper)
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun only rank 0 reports; the others still print errors
        state["quiet"], as_json = True, False
    _run_stage(stages.train, as_json, "train", features_path=features, clusters_path=clusters, output=output,
               resume=resume, force=force, device=device, threads=threads, **options)


# --------------------------------------------------------------------------- score
def _shard(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", value.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise UsageError(f"--shard must be I/N with 0 <= I < N, e.g. 0/4, got {value!r}")
    return int(match[1]), int(match[2])


@app.command(epilog="Examples: deepuad score kdd.model.h5 new.features.h5 --contamination 0.2 --json ; "
             "deepuad score kdd.model.h5 new.features.h5 --shard 0/4  (then: deepuad merge-scores new.scores.shard-*-of-4.h5)")
def score(
    model: Path = typer.Argument(..., help="A model file from 'deepuad train'."),
    features: Path = typer.Argument(..., help="Features to score (the training data, or new data made with extract --like)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <features stem>.scores.h5]."),
    contamination: Optional[float] = typer.Option(None, "--contamination", help="Flag this share of rows as anomalies [default: the share the model estimated from its training scores]."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Flag rows with score above this value."),
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    force: bool = typer.Option(False, "--force", help="Score features encoded differently from the training data anyway."),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="I/N: score only the I-th of N row ranges (0 <= I < N) into <features stem>.scores.shard-I-of-N.h5; "
        "'deepuad merge-scores' joins the N files."),
    batch_rows: int = typer.Option(16384, "--batch-rows", help="Rows scored per batch (bounds memory). Shards and the unsharded "
                                   "run they should equal need the same value."),
    fail_above: Optional[float] = typer.Option(None, "--fail-above", help="Exit 8 (after writing the scores) when more than this "
                                               "share of rows score above --threshold, e.g. 0.05: for cron and CI alerts."),
    as_json: bool = JSON_OPTION,
):
    """Score every row: h(x) = 1 - cos(x, decode(encode(x))), higher = more anomalous."""
    from deepuad import stages
    from deepuad.cli_answers import check_fail_above, check_fail_options

    check_fail_options(fail_above, threshold, shard)
    summary = _run_stage(stages.score, as_json, "score", model_path=model, features_path=features, output=output,
                         contamination=contamination, threshold=threshold, force=force, device=device, threads=threads,
                         batch_rows=batch_rows, shard=_shard(shard))
    check_fail_above(summary, fail_above)


@app.command("merge-scores", epilog="Example: deepuad merge-scores day.scores.shard-*-of-4.h5 -o day.scores.h5 --json")
def merge_scores(
    shards: list[Path] = typer.Argument(..., help="Every shard file of one 'score --shard I/N' run, in any order."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <features stem>.scores.h5 beside shard 0]."),
    contamination: Optional[float] = typer.Option(None, "--contamination", help="Flag this share of rows as anomalies [default: what the shards were scored with]."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Flag rows with score above this value."),
    as_json: bool = JSON_OPTION,
):
    """Join the shards of 'score --shard I/N' into one scores file, identical to an unsharded 'score'."""
    from deepuad import stages

    _run_stage(stages.merge_scores, as_json, "merge-scores", shard_paths=shards, output=output, contamination=contamination,
               threshold=threshold)


# --------------------------------------------------------------------------- baseline
@app.command(epilog="Example: deepuad baseline train.features.h5 --method iforest --score-features test.features.h5 --contamination 0.2")
def baseline(
    features: Path = typer.Argument(..., help="Features to fit the baseline on."),
    method: str = typer.Option("iforest", "--method", help="iforest, ocsvm, ae (deepuad's autoencoder on all rows, no selection) or dagmm."),
    score_features: Optional[Path] = typer.Option(None, "--score-features", help="Features to score [default: the same]."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output scores file [default: <stem>.<method>.scores.h5]."),
    contamination: float = typer.Option(0.1, "--contamination", help="Share of rows flagged (sets the threshold)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="ae/dagmm: epochs [default: ae 200, dagmm 100]."),
    batch_size: int = typer.Option(1024, "--batch-size", help="ae/dagmm: batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", help="ae/dagmm: learning rate [default: ae 1e-3, dagmm 1e-4]."),
    layers: str = typer.Option("60,30,10", "--layers", help="ae: encoder widths."),
    activation: str = typer.Option("tanh", "--activation", help="ae: tanh or relu."),
    max_train_samples: int = typer.Option(10000, "--max-train-samples", help="ocsvm: fit on at most this many random rows (OC-SVM is quadratic)."),
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    seed: int = SEED_OPTION,
    as_json: bool = JSON_OPTION,
):
    """A baseline detector through the same artifacts: its scores file works with evaluate and plots."""
    from deepuad import stages

    _run_stage(stages.baseline, as_json, "baseline", features_path=features, method=method, score_features=score_features,
               output=output, contamination=contamination, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
               layers=_layers(layers), activation=activation, max_train_samples=max_train_samples, device=device, threads=threads)


# --------------------------------------------------------------------------- evaluate
@app.command(epilog="Example: deepuad evaluate kdd.scores.h5 --plots report/ --json")
def evaluate(
    scores: Path = typer.Argument(..., help="A scores file from 'deepuad score' or 'deepuad baseline'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="A features file whose y are the ground truth [default: y stored with the scores]."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model for the per-iteration plot [default: the one the scores came from, if present]."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for PNG plots (ROC, PR, score histogram, iterations, videos) and metrics.json."),
    as_json: bool = JSON_OPTION,
):
    """AUROC, AUPRC and precision/recall/F1 at the stored threshold; optional plots."""
    from deepuad import stages

    _run_stage(stages.evaluate, as_json, "evaluate", scores_path=scores, labels_path=labels, model_path=model, plots_dir=plots)


# --------------------------------------------------------------------------- run
@app.command(epilog="Example: deepuad run sample_data/kddcup99_5k.csv.gz -o out --label-column label --anomaly-values normal. --epochs 50")
def run(
    input: Path = typer.Argument(..., help="Raw input for extract (CSV/TSV, .npy, .npz)."),
    output_dir: Path = typer.Option(..., "-o", "--output-dir", help="Folder for features.h5, clusters.h5, model.h5, scores.h5 (created if missing)."),
    label_column: Optional[str] = typer.Option(None, "--label-column"),
    anomaly_values: Optional[str] = typer.Option(None, "--anomaly-values"),
    categorical: Optional[str] = typer.Option(None, "--categorical"),
    drop: Optional[str] = typer.Option(None, "--drop"),
    scale: Optional[str] = typer.Option(None, "--scale"),
    method: str = typer.Option("gmm", "--method", help="Initial clustering method."),
    clusters: int = typer.Option(20, "--clusters"),
    p0: float = typer.Option(35.0, "--p0"),
    p: float = typer.Option(30.0, "--p"),
    r: int = typer.Option(10, "--r", "--reselect-every"),
    epochs: int = typer.Option(100, "--epochs"),
    batch_size: str = BATCH_SIZE_OPTION,
    lr: float = typer.Option(1e-3, "--lr"),
    layers: str = LAYERS_OPTION,
    activation: str = typer.Option("tanh", "--activation"),
    loss: str = typer.Option("mse", "--loss"),
    reselect_by: str = RESELECT_BY_OPTION,
    reselect_clusters: int = typer.Option(20, "--reselect-clusters"),
    reselect_sample: int = RESELECT_SAMPLE_OPTION,
    percentile_over: str = PERCENTILE_OPTION,
    tol: float = typer.Option(0.05, "--tol"),
    min_fraction: float = typer.Option(0.01, "--min-fraction"),
    score: str = SCORE_OPTION,
    paper: bool = PAPER_OPTION,
    contamination: Optional[float] = typer.Option(None, "--contamination"),
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    seed: int = SEED_OPTION,
    as_json: bool = JSON_OPTION,
):
    """All four stages into one folder. A stage whose artifact is already there with the same
    parameters and inputs is skipped, and a checkpointed model resumes, so re-running after a
    crash continues where it stopped."""
    from deepuad import stages

    # validate before creating the folder: a failed command leaves nothing behind
    options = _train_options(p, r, epochs, batch_size, lr, layers, activation, loss, reselect_by, reselect_clusters,
                             reselect_sample, percentile_over, tol, min_fraction, seed, score=score, paper=paper)
    if not 0 < p0 < 100:
        raise UsageError(f"--p0 must be in (0, 100), got {p0}")
    from deepuad.artifacts import is_same_or_inside

    input = stages.require_exists(input)
    f, c, m, s = (output_dir / f"{name}.h5" for name in ("features", "clusters", "model", "scores"))
    for target in (output_dir, f, c, m, s):  # before the folder is made: a refused command leaves nothing behind
        if is_same_or_inside(target, input):
            raise OutputError(f"is, or is inside, the input {input}; writing there would change that input: "
                              "choose another folder", target)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror}", output_dir) from None
    summaries = {}
    quiet = state["quiet"]
    state["quiet"] = quiet or as_json  # one JSON object at the end, not one per stage
    summaries["extract"] = _run_stage(stages.extract, False, "extract", input_path=input, output=f, categorical=_csv(categorical),
                                      drop=_csv(drop), label_column=label_column, anomaly_values=_csv(anomaly_values) or None,
                                      scale=scale, skip_current=True)
    summaries["cluster"] = _run_stage(stages.cluster, False, "cluster", features_path=f, output=c, method=method, n_clusters=clusters,
                                      p0=p0, percentile_over=options["percentile_over"], min_fraction=min_fraction, seed=seed,
                                      skip_current=True)
    summaries["train"] = _run_stage(stages.train, False, "train", features_path=f, clusters_path=c, output=m, device=device,
                                    threads=threads, skip_current=True, **options)
    summaries["score"] = _run_stage(stages.score, False, "score", model_path=m, features_path=f, output=s,
                                    contamination=contamination, device=device, threads=threads, skip_current=True)
    state["quiet"] = quiet
    if as_json:
        _emit(strict_json(summaries))


# --------------------------------------------------------------------------- inspect
@app.command(epilog="Example: deepuad inspect kdd.model.h5")
def inspect(
    file: Path = typer.Argument(..., help="Any deepuad artifact: features, clusters, model, scores or a scores shard."),
    as_json: bool = JSON_OPTION,
):
    """Show an artifact: kind, parameters, provenance, datasets and a per-kind summary."""
    from deepuad import stages

    info = stages.describe(file)
    if as_json:
        _emit(strict_json(info))
        return
    stdout.print(f"[bold]{info['path']}[/bold]: {info['kind']} (schema {info['schema_version']}, deepuad {info['deepuad_version']}, created {info['created']})")
    stdout.print(f"fingerprint {info['fingerprint'][:16]}…")
    stdout.print("params: " + json.dumps(info["params"], sort_keys=True), markup=False, highlight=False)
    for role, source in info["inputs"].items():
        digest = source.get("fingerprint") or source.get("sha256") or ""
        stdout.print(f"input {role}: {source.get('path')} ({digest[:12]}…)", markup=False)
    datasets = Table("dataset", "shape", "dtype", "description", title="datasets", title_justify="left")
    for d in info["datasets"]:
        datasets.add_row(d["name"], "x".join(map(str, d["shape"])) or "scalar", d["dtype"], d["description"])
    stdout.print(datasets)
    if info["kind"] == "clusters":
        table = Table("cluster", "size", "variance", "accepted", *(["anomaly share"] if info["clusters"] and "anomaly_share" in info["clusters"][0] else []),
                      title="clusters by increasing variance", title_justify="left")
        for c in info["clusters"]:
            table.add_row(str(c["cluster"]), str(c["size"]), f"{c['variance']:.4g}", "yes" if c["accepted"] else "no",
                          *([f"{c['anomaly_share']:.3f}"] if "anomaly_share" in c else []))
        stdout.print(table)
    if info["kind"] == "model":
        columns = ["iteration", "epoch", "n_selected", "n_changed", "loss", "auroc", "auprc", "f1", "selected_anomaly_share"]
        present = [c for c in columns if any(c in row for row in info["iterations"])]
        headers = {"iteration": "t", "n_selected": "selected", "n_changed": "changed", "selected_anomaly_share": "anomalies in set"}
        table = Table(*[headers.get(c, c) for c in present], title="iterations (re-selections)", title_justify="left")
        for row in info["iterations"]:
            table.add_row(*[_cell(row.get(c)) for c in present])
        stdout.print(table)
    _report(info["summary"], False, "summary")


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


from deepuad.cli_answers import register as _register_answers  # noqa: E402  top, explain (issue 15)

_register_answers(app)


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    previous_sigterm = _terminate_like_ctrl_c()
    state["terminated"] = False
    try:
        code = app(args=argv, prog_name="deepuad", standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent "return 130"; no command returns it otherwise
            _fail("terminated (SIGTERM)" if state.get("terminated") else "interrupted", EXIT_INTERRUPTED)
        _flush_stdout()
        sys.exit(code if isinstance(code, int) else 0)
    except DeepUADError as error:
        _fail(str(error), error.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except BrokenPipeError:
        error = _stdout_closed()
        _fail(str(error), error.exit_code)
    except (typer.Abort, KeyboardInterrupt) as error:
        cause = error.__cause__ or error.__context__ if isinstance(error, typer.Abort) else error
        if isinstance(cause, EOFError):  # click turns an EOFError into Abort: a reader that missed one, not Ctrl-C
            if "--debug" in argv:
                traceback.print_exception(cause)
            _fail(f"internal error: EOFError: {cause} (rerun with --debug for the traceback)", EXIT_INTERNAL)
        _fail("terminated (SIGTERM)" if isinstance(cause, Terminated) else "interrupted", EXIT_INTERRUPTED)
    except Exception as error:
        if _is_click_usage_error(error):
            _fail(error.format_message().replace("\n", " "), getattr(error, "exit_code", EXIT_USAGE))
        # anything else is a bug: one line unless --debug
        if "--debug" in argv:
            traceback.print_exc()
        _fail(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)", EXIT_INTERNAL)
    finally:
        if previous_sigterm is not None:  # in-process callers (tests, notebooks) get their handler back
            signal.signal(signal.SIGTERM, previous_sigterm)


def _is_click_usage_error(error: Exception) -> bool:
    # Click's exceptions (typer >= 0.2x vendors its own copy of click, so match by shape, not class)
    return hasattr(error, "format_message") and any(c.__name__ == "ClickException" for c in type(error).__mro__)


def _terminate_like_ctrl_c():
    """SIGTERM (timeout, cron supervisors, docker stop) ends the command as Ctrl-C does:
    temporary files removed, the old output kept, exit 130. Left alone where someone chose to
    ignore it, or outside the main thread (signals cannot be set there)."""
    def handler(signum, frame):
        state["terminated"] = True
        raise Terminated()

    with contextlib.suppress(ValueError, OSError, AttributeError):
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            return signal.signal(signal.SIGTERM, handler)
    return None


def _flush_stdout() -> None:
    """Flush now, so that a closed pipe is reported here and not as an "Exception ignored" at
    interpreter exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise _stdout_closed() from None


def _fail(message: str, code: int) -> None:
    stderr.print(f"deepuad: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)
