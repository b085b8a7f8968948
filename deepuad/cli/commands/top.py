"""``deepuad top``: the most anomalous rows of a scores file, in their original columns."""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, cell_text, emit, state, stdout, strict_json
from deepuad.cli.options import ForceRecorded, Json, ModelOption, Output, RecordedFeatures, RowCount
from deepuad.errors import UsageError
from deepuad.stages.defaults import TOP

TABLE_DATA_COLUMNS = 12  # a terminal shows this many original columns; csv/jsonl/parquet hold all
TABLE_ROWS = 1_000  # and this many rows (a table takes about a millisecond a row to draw)

HELP = """The most anomalous rows of a scores file, ranked: rank, id (the row number, image path or
video#segment that extract recorded), the columns given to extract --id-column, score, is_anomaly (the flag), and the row's values in its ORIGINAL columns
(the scaling undone, each one-hot group turned back into its category).

A table on a terminal; CSV on stdout in a pipe; --format jsonl or parquet (-o FILE) otherwise;
with --json one JSON object, the rows (with -o: a summary).
With --explain K each row also gets the K columns that contribute most to its score (see
'deepuad explain --help')."""

EXAMPLES = """Examples:

  deepuad top kdd.scores.h5 -n 10

  deepuad top today.scores.h5 -n 50 --format csv | mail -s anomalies ops@example.com

  deepuad top today.scores.h5 --flagged -o today.anomalies.parquet

  deepuad top kdd.scores.h5 -n 5 --explain 3 --json
"""


RowsFile = Output("Write the rows to this file (csv, jsonl or parquet) instead of stdout.")
RecordedModel = ModelOption("With --explain: the model [default: the one the scores file records].")
TopRows = RowCount("How many rows, highest score first.")


@app.command(help=HELP, epilog=EXAMPLES)
def top(
    ctx: typer.Context,
    scores_path: Annotated[Path, typer.Argument(
        metavar="scores", help="A scores file from 'deepuad score' (or merge-scores, baseline).")],
    features_path: RecordedFeatures = None,
    n: TopRows = TOP["n"],
    flagged: Annotated[bool, typer.Option("--flagged", help="Every flagged row (is_anomaly), instead of -n.")] = False,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="table, csv, jsonl or parquet [default: from -o's suffix; else table on a terminal, csv in a pipe].",
    )] = None,
    output: RowsFile = None,
    explain: Annotated[int, typer.Option(
        "--explain", help="Also the K original columns that contribute most to each row's score (needs the model; with --flagged, 100 rows at most).",
    )] = TOP["explain"],
    model_path: RecordedModel = None,
    force: ForceRecorded = False,
    as_json: Json = False,
):
    from deepuad.stages import answers as stage

    if flagged and ctx.get_parameter_source("n").name == "COMMANDLINE":
        raise UsageError("give `n` or `flagged`, not both (`flagged` shows every flagged row)")
    if model_path is not None and not explain:
        raise UsageError("`model_path` is read only with `explain` K")
    fmt = stage.output_format(fmt, output, sys.stdout.isatty() and not as_json)
    if output is not None:
        from deepuad.artifacts import check_output_path
        from deepuad.stages._common import check_not_an_input

        check_output_path(output, [scores_path, features_path, model_path])
        check_not_an_input(output, [scores_path, features_path, model_path])
    result = stage.top(scores_path, features_path, None if flagged else n, flagged, force, explain, model_path)
    if output is not None:
        written = stage.write_rows(result, fmt, output)
        summary = {k: v for k, v in result.items() if k not in ("chunks", "columns")}
        summary.update(output=written, format=fmt)
        if as_json:
            emit(strict_json(summary))
        elif not state["quiet"]:
            stdout.print(f"{written}: {result['shown']} rows ({fmt})", markup=False, highlight=False)
        return
    if as_json:
        stage.write_json(result, sys.stdout.write, strict_json)
        emit("")
    elif fmt == "csv":
        stage.write_csv(result, sys.stdout.write)
    elif fmt == "jsonl":
        stage.write_jsonl(result, sys.stdout.write)
    else:
        _print_table(result, stdout)


def _print_table(result: dict, console) -> None:
    """The rows as a table on the terminal: the first TABLE_ROWS of them, and the columns that fit."""
    from rich.table import Table

    from deepuad.stages.answers import RESERVED, cell, row_dicts

    rows = row_dicts(result, TABLE_ROWS)
    fixed = [c for c in result["columns"] if c in RESERVED]
    data = [c for c in result["columns"] if c not in fixed]

    def width(column):  # what a column takes: its widest cell or header, plus borders
        return 3 + max([len(column)] + [len(cell_text(cell(row, column))) for row in rows])

    room = console.width - sum(min(width(c), 40) for c in fixed)
    shown = []
    for column in data[:TABLE_DATA_COLUMNS]:
        room -= width(column)
        if room < 0 and shown:
            break
        shown.append(column)
    caption = None
    if len(data) > len(shown):
        caption = f"{len(data) - len(shown)} more columns: --format csv or jsonl"
    elif not result["values_shown"]:
        caption = "values not shown: more than 32 array columns (see the id)"
    if result["shown"] > len(rows):
        caption = (f"{caption}; " if caption else "") + f"the first {len(rows):,} rows: --format csv or -o FILE for all"
    table = Table(title=f"{result['shown']} of {result['rows_total']} rows ({result['flagged_total']} flagged, "
                  f"threshold {result['threshold']:.4g})", title_justify="left", caption=caption, caption_justify="left")
    for column in fixed + shown:
        table.add_column(column, no_wrap=column != "why", overflow="fold")
    for row in rows:
        table.add_row(*(cell_text(cell(row, c)) for c in fixed + shown))
    console.print(table)
