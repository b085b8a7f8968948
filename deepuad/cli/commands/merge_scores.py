"""``deepuad merge-scores``: the shards of one ``score --shard I/N`` run -> one scores file."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import Json, Output, Threshold


ScoresFile = Output("Output file [default: <features stem>.scores.h5 beside shard 0].")


@app.command("merge-scores", epilog="Example: deepuad merge-scores day.scores.shard-*-of-4.h5 -o day.scores.h5 --json")
def merge_scores(
    shards: Annotated[list[Path], typer.Argument(help="Every shard file of one 'score --shard I/N' run, in any order.")],
    output: ScoresFile = None,
    contamination: Annotated[Optional[float], typer.Option(
        "--contamination", help="Flag this share of rows as anomalies [default: what the shards were scored with].")] = None,
    threshold: Threshold = None,
    as_json: Json = False,
):
    """Join the shards of 'score --shard I/N' into one scores file, identical to an unsharded 'score'."""
    from deepuad.stages.merge_scores import merge_scores as stage

    run_stage(stage, as_json, "merge-scores", shard_paths=shards, output=output, contamination=contamination,
              threshold=threshold)
