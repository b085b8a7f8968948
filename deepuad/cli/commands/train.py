"""``deepuad train``: Algorithm 1, from the features and the initial selection to a model."""

from pathlib import Path
from typing import Annotated

import typer

from deepuad.cli.app import app, run_stage, state
from deepuad.cli.options import Device, Force, Json, Output, Paper, Threads, spec_values, with_spec_options
from deepuad.errors import UsageError
from deepuad.stages.defaults import DEVICE


ModelFile = Output("Output model file [default: <stem>.model.h5].")
ForceMismatch = Force("Use a clusters file made from other features, or --resume a checkpoint made with other parameters "
                      "or inputs, anyway.")


@app.command(epilog="Example: deepuad train kdd.features.h5 kdd.clusters.h5 --p 30 --r 10 --epochs 200 --layers 60,30,10")
@with_spec_options("train", after="output")
def train(
    features_path: Annotated[Path, typer.Argument(metavar="features", help="The features file the clusters were made from.")],
    clusters_path: Annotated[Path, typer.Argument(metavar="clusters", help="The clusters file from 'deepuad cluster'.")],
    output: ModelFile = None,
    paper: Paper = False,
    device: Device = DEVICE,
    threads: Threads = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run that was writing the output, from its checkpoint beside it (<output "
        "stem>.checkpoint.h5), else train the model in the output on (e.g. with more --epochs); exit 3 when there is "
        "neither.")] = False,
    resume_or_start: Annotated[bool, typer.Option(
        "--resume-or-start", help="For scripts: continue the run from its checkpoint if it was made from the same inputs "
        "and parameters, else start afresh (warned).")] = False,
    force: ForceMismatch = False,
    as_json: Json = False,
    **options,  # the spec's options (with_spec_options)
):
    """Algorithm 1: train the autoencoder, re-selecting the training set every r epochs until it stops changing. A run
    checkpoints beside its output; only the finished model replaces the output. Progress: on a terminal a bar with the
    loss, in a pipe or log one line per re-selection (--quiet: none)."""
    from deepuad.estimators.params import torchrun_environment
    from deepuad.stages.train import train as stage

    if resume and resume_or_start:
        raise UsageError("`resume` and `resume_or_start` exclude each other: `resume` fails when there is nothing to "
                         "resume, `resume_or_start` then starts afresh")
    if torchrun_environment()["RANK"] > 0:  # under torchrun only rank 0 reports; the others still print errors
        state["quiet"], as_json = True, False
    run_stage(stage, as_json, "train", features_path=features_path, clusters_path=clusters_path, output=output,
              resume="required" if resume else "if-possible" if resume_or_start else "never", force=force, device=device,
              threads=threads, **spec_values("train", options, paper))
