"""``deepuad report``: one self-contained HTML page about a scores file."""

from pathlib import Path
from typing import Annotated

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import ColumnCount, ForceRecorded, Json, ModelOption, Output, RecordedFeatures, RowCount
from deepuad.stages.defaults import REPORT

HELP = """One self-contained HTML page about a scores file, for the people who act on it: what was run
(inputs and their fingerprints, parameters, version, date, the model's training), the score
distribution and threshold, the flagged share against the training data's, the drift of the
scored data from the training data per column, the top rows in their original columns with the
columns that drove each score, the training story (kept rows and changes per re-selection, loss
per epoch) and, with labels, ROC and PR curves. No network: styles and charts are inline, and
the page loads nothing. Charts need matplotlib (pip install 'deepuad[plots]'); without it the
page says so and keeps its tables."""


PageFile = Output("The HTML file [default: <scores stem>.report.html beside it].")
RecordedModel = ModelOption("The model [default: the one the scores file records; none for a baseline's scores].")
TopRows = RowCount("Top rows shown, highest score first.")
DrivingColumns = ColumnCount("Columns that drove each top row's score, shown per row.")


@app.command(help=HELP, epilog="Example: deepuad report demo/scores.h5 -o demo/report.html")
def report(
    scores_path: Annotated[Path, typer.Argument(
        metavar="scores", help="A scores file from 'deepuad score' (or merge-scores, baseline).")],
    output: PageFile = None,
    features_path: RecordedFeatures = None,
    model_path: RecordedModel = None,
    n: TopRows = REPORT["n"],
    k: DrivingColumns = REPORT["k"],
    force: ForceRecorded = False,
    as_json: Json = False,
):
    from deepuad.stages.report import report as stage

    run_stage(stage, as_json, "report", scores_path=scores_path, output=output, features_path=features_path,
              model_path=model_path, n=n, k=k, force=force)
