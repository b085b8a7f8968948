"""``deepuad baseline``: a baseline detector, through the same artifacts as DeepUAD."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import (
    BASELINE_METHOD_OPTIONS, Device, Json, Output, Threads, refuse_unused, spec_values, with_spec_options,
)
from deepuad.estimators.params import BASELINE_DEFAULTS, BASELINE_EPOCHS, BASELINE_LR, DEFAULTS
from deepuad.stages.defaults import DEVICE


ScoresFile = Output("Output scores file [default: <stem>.<method>.scores.h5].")


@app.command(epilog="Example: deepuad baseline train.features.h5 --method iforest --score-features test.features.h5 "
             "--contamination 0.2")
@with_spec_options("baseline", after="threads")
def baseline(
    ctx: typer.Context,
    features_path: Annotated[Path, typer.Argument(metavar="features", help="Features to fit the baseline on.")],
    method: Annotated[str, typer.Option(
        "--method", help="iforest, ocsvm, ae (deepuad's autoencoder on all rows, no selection) or dagmm.",
    )] = BASELINE_DEFAULTS["method"],
    score_features: Annotated[Optional[Path], typer.Option(
        "--score-features", help="Features to score [default: the same].")] = None,
    output: ScoresFile = None,
    contamination: Annotated[float, typer.Option(
        "--contamination", help="Share of rows flagged (sets the threshold).")] = BASELINE_DEFAULTS["contamination"],
    epochs: Annotated[Optional[int], typer.Option(
        "--epochs", help=f"ae/dagmm: epochs [default: ae {BASELINE_EPOCHS['ae']}, dagmm {BASELINE_EPOCHS['dagmm']}].")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="ae/dagmm: batch size.")] = BASELINE_DEFAULTS["batch_size"],
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help=f"ae/dagmm: learning rate [default: ae {BASELINE_LR['ae']:g}, dagmm {BASELINE_LR['dagmm']:g}].")] = None,
    layers: Annotated[str, typer.Option("--layers", help="ae: encoder widths.")] = ",".join(map(str, BASELINE_DEFAULTS["layers"])),
    activation: Annotated[str, typer.Option("--activation", help="ae: tanh or relu.")] = DEFAULTS["activation"],
    max_train_samples: Annotated[int, typer.Option(
        "--max-train-samples", help="ocsvm: fit on at most this many random rows (OC-SVM is quadratic).",
    )] = BASELINE_DEFAULTS["max_train_samples"],
    device: Device = DEVICE,
    threads: Threads = None,
    as_json: Json = False,
    **options,  # the spec's options (with_spec_options)
):
    """A baseline detector through the same artifacts: its scores file works with evaluate and plots."""
    from deepuad.estimators.params import parse_layers
    from deepuad.stages.baseline import baseline as stage

    refuse_unused(ctx, "method", BASELINE_METHOD_OPTIONS)
    run_stage(stage, as_json, "baseline", features_path=features_path, method=method, score_features=score_features,
              output=output, contamination=contamination, epochs=epochs, batch_size=batch_size, lr=lr,
              layers=parse_layers(layers), activation=activation, max_train_samples=max_train_samples, device=device,
              threads=threads, **spec_values("baseline", options))
