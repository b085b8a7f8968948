"""``deepuad evaluate``: a scores file against its labels."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import Json, ModelOption, Plots


IterationsModel = ModelOption("Model for the per-iteration plot [default: the one the scores came from, if present].")
PlotsFolder = Plots("Folder for PNG plots (ROC, PR, score histogram, iterations, videos) and metrics.json.")


@app.command(epilog="Example: deepuad evaluate kdd.scores.h5 --plots report/ --json")
def evaluate(
    scores_path: Annotated[Path, typer.Argument(
        metavar="scores", help="A scores file from 'deepuad score' or 'deepuad baseline'.")],
    labels_path: Annotated[Optional[Path], typer.Option(
        "--labels", help="A features file whose y are the ground truth [default: y stored with the scores].")] = None,
    model_path: IterationsModel = None,
    plots_dir: PlotsFolder = None,
    as_json: Json = False,
):
    """AUROC, AUPRC and precision/recall/F1 at the stored threshold; optional plots."""
    from deepuad.stages.evaluate import evaluate as stage

    run_stage(stage, as_json, "evaluate", scores_path=scores_path, labels_path=labels_path, model_path=model_path,
              plots_dir=plots_dir)
