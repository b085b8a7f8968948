"""``deepuad run``: extract, cluster, train and score into one folder (``deepuad.stages.run``)."""

from pathlib import Path
from typing import Annotated

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import (
    CLUSTER_METHOD_OPTIONS, AnomalyValues, Categorical, Device, Drop, IdColumns, Json, LabelColumn, Missing, Paper, Scale,
    Threads, refuse_unused, spec_values, table_options, with_spec_options,
)
from deepuad.stages.defaults import DEVICE


@app.command(epilog="Example: deepuad run sample_data/kddcup99_5k.csv.gz -o out --label-column label --anomaly-values normal. "
             "--epochs 50")
@with_spec_options("run", after="id_columns")
def run(
    ctx: typer.Context,
    input_path: Annotated[Path, typer.Argument(
        metavar="input", help="Raw input for extract: CSV/TSV with a header (.gz ok), Parquet or Arrow/Feather, .npy, .npz "
        "(X, optional y).")],
    output_dir: Annotated[Path, typer.Option(
        "-o", "--output-dir", help="Folder for features.h5, clusters.h5, model.h5, scores.h5 (created if missing).")],
    label_column: LabelColumn = None,
    anomaly_values: AnomalyValues = None,
    categorical: Categorical = None,
    drop: Drop = None,
    scale: Scale = None,
    missing: Missing = None,
    id_columns: IdColumns = None,
    paper: Paper = False,
    device: Device = DEVICE,
    threads: Threads = None,
    as_json: Json = False,
    **options,  # the spec's options (with_spec_options)
):
    """All four stages into one folder. A stage whose artifact is already there with the same
    parameters and inputs is skipped, and a checkpointed model resumes, so re-running after a
    crash continues where it stopped."""
    from deepuad.stages.run import run as stage

    refuse_unused(ctx, "init_method", CLUSTER_METHOD_OPTIONS)
    run_stage(stage, as_json, None, input_path=input_path, output_dir=output_dir, device=device, threads=threads,
              **table_options(categorical, drop, label_column, anomaly_values, scale, missing, id_columns),
              **spec_values("run", options, paper))
