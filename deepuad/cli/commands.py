"""The commands: each parses its options and calls its stage (``deepuad.stages.<command>``).
A new command is a function here, decorated with ``@app.command``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from deepuad.errors import OutputError, UsageError
from deepuad.estimators.params import (
    BASELINE_DEFAULTS, BASELINE_EPOCHS, BASELINE_LR, DEFAULTS, LIMITS, METHOD_SPEC, SCORE_BATCH_ROWS, check_params, flag,
    options_of, parse_layers, torchrun_environment,
)
from deepuad.cli.app import _emit, _report, _run_stage, app, state, stdout, strict_json
from deepuad.cli.options import (
    ANOMALY_VALUES_OPTION, CATEGORICAL_OPTION, CLUSTER_PAPER_OPTION, CONTAMINATION_OPTION, DEVICE_OPTION, DROP_OPTION,
    ID_COLUMN_OPTION, JSON_OPTION, LABEL_COLUMN_OPTION, MISSING_OPTION, PAPER_OPTION, SCALE_OPTION, SEED_OPTION,
    THREADS_OPTION, _csv, _id_columns, _shard, _size, spec_values, with_spec_options,
    BASELINE_METHOD_OPTIONS, CLUSTER_METHOD_OPTIONS, check_option, refuse_unused,
)



EXTRACT_EXAMPLES = """Examples:

  deepuad extract kdd.csv --label-column label --anomaly-values normal.

  deepuad extract t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz --normal-class 4 --anomaly-ratio 0.05

  deepuad extract photos/ --size 32x32 --grayscale            (a folder of images; class = first sub-folder)

  deepuad extract photos/ --model resnet18.pt --size 224x224  (features from your TorchScript model)

  deepuad extract c3d/ --annotations Temporal_Anomaly_Annotation_for_Testing_Videos.txt --per-video
"""


@app.command(epilog=EXTRACT_EXAMPLES)
def extract(
    input: Path = typer.Argument(..., help="CSV/TSV with a header (.gz ok), Parquet or Arrow/Feather, .npy, .npz (X, optional y), MNIST IDX, a folder of images, or a folder of per-video feature files."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <input stem>.features.h5 beside the input]."),
    like: Optional[Path] = typer.Option(None, "--like", help="Encode exactly like this features file (same columns, vocabularies, scaler)."),
    input_type: str = typer.Option("auto", "--type", help="auto, table, numpy, idx, images or video."),
    categorical: Optional[str] = CATEGORICAL_OPTION,
    drop: Optional[str] = DROP_OPTION,
    label_column: Optional[str] = LABEL_COLUMN_OPTION,
    anomaly_values: Optional[str] = ANOMALY_VALUES_OPTION,
    scale: Optional[str] = SCALE_OPTION,
    missing: Optional[str] = MISSING_OPTION,
    id_column: Optional[list[str]] = ID_COLUMN_OPTION,
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
    from deepuad.stages.extract import extract as stage

    if chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be >= 1, got {chunk_rows}")
    _run_stage(
        stage, as_json, "extract", input_path=input, output=output, like=like, input_type=input_type,
        categorical=_csv(categorical), drop=_csv(drop), label_column=label_column,
        anomaly_values=_csv(anomaly_values) or None, scale=scale, missing=missing, id_columns=_id_columns(id_column),
        chunk_rows=chunk_rows, text_encoding=encoding,
        compress=compress, labels=labels, size=_size(size), grayscale=grayscale, model=model, device=device,
        annotations=annotations, segment_frames=segment_frames, per_video=per_video, normal_class=normal_class,
        anomaly_ratio=anomaly_ratio, seed=seed,
    )


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


@app.command(help=CLUSTER_HELP, epilog="Examples: deepuad cluster kdd.features.h5 --p0 35 ; deepuad cluster cifar.features.h5 --method distribution --thres 0.06 --min-clus 5 --max-dist 1.4")
@with_spec_options("cluster", after="output")
def cluster(
    ctx: typer.Context,
    features: Path = typer.Argument(..., help="A features file from 'deepuad extract'."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <stem>.clusters.h5]."),
    paper: bool = CLUSTER_PAPER_OPTION,
    as_json: bool = JSON_OPTION,
    **options,  # the options of with_spec_options
):
    from deepuad.stages.cluster import cluster as stage

    refuse_unused(ctx, options["init_method"], CLUSTER_METHOD_OPTIONS)
    values = spec_values("cluster", options, paper)
    method_options = {name: values.pop(name) for name in METHOD_SPEC}
    if values["init_method"] != "distribution":  # a clusters file records the other methods' options whatever the method
        method_options = {name: value for name, value in method_options.items() if METHOD_SPEC[name].methods != ("distribution",)}
    _run_stage(stage, as_json, "cluster", features_path=features, output=output, method_options=method_options, **values)


@app.command(epilog="Example: deepuad train kdd.features.h5 kdd.clusters.h5 --p 30 --r 10 --epochs 200 --layers 60,30,10")
@with_spec_options("train", after="output")
def train(
    features: Path = typer.Argument(..., help="The features file the clusters were made from."),
    clusters: Path = typer.Argument(..., help="The clusters file from 'deepuad cluster'."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output model file [default: <stem>.model.h5]."),
    paper: bool = PAPER_OPTION,
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    resume: bool = typer.Option(False, "--resume", help="Continue the run that was writing the output, from its checkpoint "
                                "beside it (<output stem>.checkpoint.h5), else train the model in the output on (e.g. with more "
                                "--epochs); exit 3 when there is neither."),
    resume_or_start: bool = typer.Option(False, "--resume-or-start", help="For scripts: continue the run from its checkpoint "
                                         "if it was made from the same inputs and parameters, else start afresh (warned)."),
    force: bool = typer.Option(False, "--force", help="Use a clusters file made from other features, or --resume a checkpoint "
                               "made with other parameters or inputs, anyway."),
    as_json: bool = JSON_OPTION,
    **options,  # the options of with_spec_options
):
    """Algorithm 1: train the autoencoder, re-selecting the training set every r epochs until it stops changing. A run
    checkpoints beside its output; only the finished model replaces the output. Progress: on a terminal a bar with the
    loss, in a pipe or log one line per re-selection (--quiet: none)."""
    from deepuad.stages.train import train as stage

    if resume and resume_or_start:
        raise UsageError("--resume and --resume-or-start exclude each other: --resume fails when there is nothing to "
                         "resume, --resume-or-start then starts afresh")
    values = spec_values("train", options, paper)
    if torchrun_environment()["RANK"] > 0:  # under torchrun only rank 0 reports; the others still print errors
        state["quiet"], as_json = True, False
    _run_stage(stage, as_json, "train", features_path=features, clusters_path=clusters, output=output,
               resume="required" if resume else "if-possible" if resume_or_start else "never", force=force, device=device,
               threads=threads, **values)


@app.command(epilog="Examples: deepuad score kdd.model.h5 new.features.h5 --contamination 0.2 --json ; "
             "deepuad score kdd.model.h5 new.features.h5 --shard 0/4  (then: deepuad merge-scores new.scores.shard-*-of-4.h5)")
def score(
    model: Path = typer.Argument(..., help="A model file from 'deepuad train'."),
    features: Path = typer.Argument(..., help="Features to score (the training data, or new data made with extract --like)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file [default: <features stem>.scores.h5]."),
    contamination: Optional[float] = CONTAMINATION_OPTION,
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Flag rows with score above this value."),
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    force: bool = typer.Option(False, "--force", help="Score features encoded differently from the training data anyway."),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="I/N: score only the I-th of N row ranges (0 <= I < N) into <features stem>.scores.shard-I-of-N.h5; "
        "'deepuad merge-scores' joins the N files."),
    batch_rows: int = typer.Option(SCORE_BATCH_ROWS, "--batch-rows", max=LIMITS["batch_rows"], help="Rows scored per batch (bounds memory). Shards and the unsharded "
                                   "run they should equal need the same value."),
    fail_above: Optional[float] = typer.Option(None, "--fail-above", help="Exit 8 (after writing the scores) when more than this "
                                               "share of rows score above --threshold, e.g. 0.05: for cron and CI alerts."),
    fail_on_drift: Optional[float] = typer.Option(None, "--fail-on-drift", help="Exit 9 (after writing the scores) when a column "
                                                  "drifted from the training data beyond this PSI, e.g. 0.25: a stale model, "
                                                  "not a bad night. Checked before --fail-above."),
    as_json: bool = JSON_OPTION,
):
    """Score every row with the model's score (train --score), higher = more anomalous. The rows the model was trained on were scored by train already: their scores are taken from the model (the same numbers)."""
    from deepuad.cli.answers import check_fail_above, check_fail_options
    from deepuad.stages.score import score as stage

    from deepuad.cli.report import check_drift_option, check_fail_on_drift

    check_fail_options(fail_above, threshold, shard)
    check_drift_option(fail_on_drift, shard)
    summary = _run_stage(stage, as_json, "score", model_path=model, features_path=features, output=output,
                         contamination=contamination, threshold=threshold, force=force, device=device, threads=threads,
                         batch_rows=batch_rows, shard=_shard(shard), need_drift=fail_on_drift is not None)
    check_fail_on_drift(summary, fail_on_drift)
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
    from deepuad.stages.merge_scores import merge_scores as stage

    _run_stage(stage, as_json, "merge-scores", shard_paths=shards, output=output, contamination=contamination,
               threshold=threshold)


@app.command(epilog="Example: deepuad baseline train.features.h5 --method iforest --score-features test.features.h5 --contamination 0.2")
def baseline(
    ctx: typer.Context,
    features: Path = typer.Argument(..., help="Features to fit the baseline on."),
    method: str = typer.Option("iforest", "--method", help="iforest, ocsvm, ae (deepuad's autoencoder on all rows, no selection) or dagmm."),
    score_features: Optional[Path] = typer.Option(None, "--score-features", help="Features to score [default: the same]."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output scores file [default: <stem>.<method>.scores.h5]."),
    contamination: float = typer.Option(BASELINE_DEFAULTS["contamination"], "--contamination", help="Share of rows flagged (sets the threshold)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"ae/dagmm: epochs [default: ae {BASELINE_EPOCHS['ae']}, dagmm {BASELINE_EPOCHS['dagmm']}]."),
    batch_size: int = typer.Option(BASELINE_DEFAULTS["batch_size"], "--batch-size", help="ae/dagmm: batch size."),
    lr: Optional[float] = typer.Option(None, "--lr", help=f"ae/dagmm: learning rate [default: ae {BASELINE_LR['ae']:g}, dagmm {BASELINE_LR['dagmm']:g}]."),
    layers: str = typer.Option(",".join(map(str, BASELINE_DEFAULTS["layers"])), "--layers", help="ae: encoder widths."),
    activation: str = typer.Option(DEFAULTS["activation"], "--activation", help="ae: tanh or relu."),
    max_train_samples: int = typer.Option(BASELINE_DEFAULTS["max_train_samples"], "--max-train-samples", help="ocsvm: fit on at most this many random rows (OC-SVM is quadratic)."),
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    seed: int = SEED_OPTION,
    as_json: bool = JSON_OPTION,
):
    """A baseline detector through the same artifacts: its scores file works with evaluate and plots."""
    from deepuad.estimators.params import ACTIVATIONS
    from deepuad.stages.baseline import baseline as stage

    refuse_unused(ctx, method, BASELINE_METHOD_OPTIONS)
    check_option("--batch-size", batch_size, lambda v: v >= 1, ">= 1")
    check_option("--activation", activation, lambda v: v in ACTIVATIONS, "one of " + ", ".join(ACTIVATIONS))
    _run_stage(stage, as_json, "baseline", features_path=features, method=method, score_features=score_features,
               output=output, contamination=contamination, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
               layers=parse_layers(layers), activation=activation, max_train_samples=max_train_samples, device=device, threads=threads)


@app.command(epilog="Example: deepuad evaluate kdd.scores.h5 --plots report/ --json")
def evaluate(
    scores: Path = typer.Argument(..., help="A scores file from 'deepuad score' or 'deepuad baseline'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="A features file whose y are the ground truth [default: y stored with the scores]."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model for the per-iteration plot [default: the one the scores came from, if present]."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for PNG plots (ROC, PR, score histogram, iterations, videos) and metrics.json."),
    as_json: bool = JSON_OPTION,
):
    """AUROC, AUPRC and precision/recall/F1 at the stored threshold; optional plots."""
    from deepuad.stages.evaluate import evaluate as stage

    _run_stage(stage, as_json, "evaluate", scores_path=scores, labels_path=labels, model_path=model, plots_dir=plots)


@app.command(epilog="Example: deepuad run sample_data/kddcup99_5k.csv.gz -o out --label-column label --anomaly-values normal. --epochs 50")
@with_spec_options("run", after="id_column")
def run(
    ctx: typer.Context,
    input: Path = typer.Argument(..., help="Raw input for extract: CSV/TSV with a header (.gz ok), Parquet or Arrow/Feather, .npy, .npz (X, optional y)."),
    output_dir: Path = typer.Option(..., "-o", "--output-dir", help="Folder for features.h5, clusters.h5, model.h5, scores.h5 (created if missing)."),
    label_column: Optional[str] = LABEL_COLUMN_OPTION,
    anomaly_values: Optional[str] = ANOMALY_VALUES_OPTION,
    categorical: Optional[str] = CATEGORICAL_OPTION,
    drop: Optional[str] = DROP_OPTION,
    scale: Optional[str] = SCALE_OPTION,
    missing: Optional[str] = MISSING_OPTION,
    id_column: Optional[list[str]] = ID_COLUMN_OPTION,
    paper: bool = PAPER_OPTION,
    device: str = DEVICE_OPTION,
    threads: Optional[int] = THREADS_OPTION,
    as_json: bool = JSON_OPTION,
    **options,  # the options of with_spec_options
):
    """All four stages into one folder. A stage whose artifact is already there with the same
    parameters and inputs is skipped, and a checkpointed model resumes, so re-running after a
    crash continues where it stopped."""
    from deepuad.stages import cluster as cluster_stage, extract as extract_stage, score as score_stage, train as train_stage
    from deepuad.stages._common import check_threshold_options, require_exists
    from deepuad.inputs.arrays import SCALERS
    from deepuad.artifacts import is_same_or_inside

    # every stage's options, checked as each stage would before the folder is made: a bad --lr
    # must not leave features.h5 behind
    values = spec_values("run", options, paper)
    contamination = values.pop("contamination")
    check_params(values)
    check_threshold_options(contamination, None)
    check_option("--scale", scale, lambda v: v is None or v in SCALERS, "one of " + ", ".join(SCALERS))
    refuse_unused(ctx, values["init_method"], CLUSTER_METHOD_OPTIONS)
    check_option(flag("p"), values["p"], lambda v: v < values["p0"],
                 f"below {flag('p0')} ({values['p0']:g}): re-selection is stricter than the initial one")
    clustering = {param.name: values[param.name] for param in options_of("cluster") if param.name in values}
    training = {param.name: values[param.name] for param in options_of("train") if param.name in values}

    input = require_exists(input)
    f, c, m, s = (output_dir / f"{name}.h5" for name in ("features", "clusters", "model", "scores"))
    for target in (output_dir, f, c, m, s):  # before the folder is made: a refused command leaves nothing behind
        if is_same_or_inside(target, input):
            raise OutputError(f"is, or is inside, {input}, an input of this command; writing there would change it: "
                              "choose another folder", target)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create folder: {error.strerror}", output_dir) from None
    summaries = {}
    quiet = state["quiet"]
    state["quiet"] = quiet or as_json  # one JSON object at the end, not one per stage
    summaries["extract"] = _run_stage(extract_stage.extract, False, "extract", input_path=input, output=f, categorical=_csv(categorical),
                                      drop=_csv(drop), label_column=label_column, anomaly_values=_csv(anomaly_values) or None,
                                      scale=scale, missing=missing, id_columns=_id_columns(id_column), skip_current=True)
    summaries["cluster"] = _run_stage(cluster_stage.cluster, False, "cluster", features_path=f, output=c, skip_current=True,
                                      **clustering)
    summaries["train"] = _run_stage(train_stage.train, False, "train", features_path=f, clusters_path=c, output=m, device=device,
                                    threads=threads, skip_current=True, resume="if-possible", **training)
    summaries["score"] = _run_stage(score_stage.score, False, "score", model_path=m, features_path=f, output=s,
                                    contamination=contamination, device=device, threads=threads, skip_current=True)
    state["quiet"] = quiet
    if as_json:
        _emit(strict_json(summaries))


@app.command(epilog="Example: deepuad inspect kdd.model.h5")
def inspect(
    file: Path = typer.Argument(..., help="Any deepuad artifact: features, clusters, model, scores or a scores shard."),
    as_json: bool = JSON_OPTION,
):
    """Show an artifact: kind, parameters, provenance, datasets and a per-kind summary."""
    from deepuad.stages.inspect import describe

    info = describe(file)
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
    if info["kind"] == "scores" and info.get("drift", {}).get("measured"):
        drift = info["drift"]
        table = Table("column", "PSI", "encoded column", title=f"drift from the training data ({drift['compared']}; "
                      f"above {drift['act_above']:g}: worth acting on)", title_justify="left")
        for c in drift["columns"][:10]:
            table.add_row(c["column"], f"{c['psi']:.3g}", c["feature"])
        stdout.print(table, markup=False, highlight=False)
    _report(info["summary"], False, "summary")


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)
