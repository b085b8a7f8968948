"""The ``top`` and ``explain`` commands and the ``score --fail-above`` check (registered on the
app by ``deepuad.cli``): parse, validate, call ``deepuad.stages.answers``, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from deepuad.errors import AnomaliesAbove, UsageError

TABLE_DATA_COLUMNS = 12  # a terminal shows this many original columns; csv/jsonl/parquet hold all
TABLE_ROWS = 1_000  # and this many rows (a table takes about a millisecond a row to draw)

TOP_HELP = """The most anomalous rows of a scores file, ranked: rank, id (the row number, image path or
video#segment that extract recorded), the columns given to extract --id-column, score, is_anomaly (the flag), and the row's values in its ORIGINAL columns
(the scaling undone, each one-hot group turned back into its category).

A table on a terminal; CSV on stdout in a pipe; --format jsonl or parquet (-o FILE) otherwise.
With --explain K each row also gets the K columns that contribute most to its score (see
'deepuad explain --help')."""

TOP_EXAMPLES = """Examples:

  deepuad top kdd.scores.h5 -n 10

  deepuad top today.scores.h5 -n 50 --format csv | mail -s anomalies ops@example.com

  deepuad top today.scores.h5 --flagged -o today.anomalies.parquet

  deepuad top kdd.scores.h5 -n 5 --explain 3 --json
"""

EXPLAIN_HELP = """Why rows score high: per row, the original columns that contribute most to its score,
and the value the model expected there.

A column's contribution is how much the row's whole score (every part of it: reconstruction
error, isolation forest, ...) falls when that column alone is set to its expected value (a
text column's one-hot group as a whole); share: over the positive contributions. 'expected':
over the 5 kept training rows nearest the row in its other columns, the column's median or
most common category (for --score cosine, which keeps no rows: the reconstruction). A column
holding its expected value contributes 0. Each row also shows each score part's robust z-score."""

EXPLAIN_EXAMPLES = """Examples:

  deepuad explain kdd.model.h5 kdd.features.h5 --top 5

  deepuad explain kdd.model.h5 kdd.features.h5 --rows 17,4096 --plots why/

  deepuad explain photos.model.h5 photos.features.h5 --rows cats/001.png --json
"""


def _ids(values: Optional[list[str]]) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def register(app: typer.Typer) -> None:
    @app.command(help=TOP_HELP, epilog=TOP_EXAMPLES)
    def top(
        ctx: typer.Context,
        scores: Path = typer.Argument(..., help="A scores file from 'deepuad score' (or merge-scores, baseline)."),
        features: Optional[Path] = typer.Option(None, "--features", help="The features file the scores came from [default: the one the scores file records]."),
        n: int = typer.Option(20, "-n", "--n", help="How many rows, highest score first."),
        flagged: bool = typer.Option(False, "--flagged", help="Every flagged row (is_anomaly), instead of -n."),
        fmt: Optional[str] = typer.Option(None, "--format", help="table, csv, jsonl or parquet [default: from -o's suffix; else table on a terminal, csv in a pipe]."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the rows to this file (csv, jsonl or parquet) instead of stdout."),
        explain: int = typer.Option(0, "--explain", help="Also the K original columns that contribute most to each row's score (needs the model; with --flagged, 100 rows at most)."),
        model: Optional[Path] = typer.Option(None, "--model", help="With --explain: the model [default: the one the scores file records]."),
        force: bool = typer.Option(False, "--force", help="Use features (or a model) other than those the scores were made from."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object: the rows (or, with -o, a summary)."),
    ):
        from deepuad.stages import answers as answer_stages
        from deepuad.cli.app import _emit, state, stdout, strict_json

        if flagged and ctx.get_parameter_source("n").name == "COMMANDLINE":
            raise UsageError("give -n or --flagged, not both (--flagged shows every flagged row)")
        if model is not None and not explain:
            raise UsageError("--model is read only with --explain K")
        fmt = answer_stages.output_format(fmt, output, sys.stdout.isatty() and not as_json)
        if output is not None:
            from deepuad.artifacts import check_output_path
            from deepuad.stages._common import check_not_an_input

            check_output_path(output, [scores, features, model])
            check_not_an_input(output, [scores, features, model])
        result = answer_stages.top(scores, features, None if flagged else n, flagged, force, explain, model)
        if output is not None:
            written = answer_stages.write_rows(result, fmt, output)
            summary = {k: v for k, v in result.items() if k not in ("chunks", "columns")}
            summary.update(output=written, format=fmt)
            if as_json:
                _emit(strict_json(summary))
            elif not state["quiet"]:
                stdout.print(f"{written}: {result['shown']} rows ({fmt})", markup=False, highlight=False)
            return
        if as_json:
            answer_stages.write_json(result, sys.stdout.write, strict_json)
            _emit("")
        elif fmt == "csv":
            answer_stages.write_csv(result, sys.stdout.write)
        elif fmt == "jsonl":
            answer_stages.write_jsonl(result, sys.stdout.write)
        else:
            _print_table(result, stdout)

    @app.command(help=EXPLAIN_HELP, epilog=EXPLAIN_EXAMPLES)
    def explain(
        model: Path = typer.Argument(..., help="A model file from 'deepuad train'."),
        features: Path = typer.Argument(..., help="Features encoded like the model's training data."),
        rows: Optional[list[str]] = typer.Option(None, "--rows", help="Row ids to explain, comma-separated (the ids extract recorded: row numbers, image paths, video#segment)."),
        top_n: Optional[int] = typer.Option(None, "--top", help="Explain the N highest-scoring rows [default: 10 when --rows is not given]."),
        scores: Optional[Path] = typer.Option(None, "--scores", help="With --top: rank by this scores file instead of scoring every row again."),
        k: int = typer.Option(5, "-k", help="Columns shown per row."),
        plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for one bar-chart PNG per row."),
        force: bool = typer.Option(False, "--force", help="Explain features encoded differently from the training data anyway."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    ):
        from rich.table import Table

        from deepuad.stages import answers as answer_stages
        from deepuad.cli.app import _emit, state, stdout, strict_json

        from deepuad.stages._common import check_not_an_input

        if rows and scores is not None:
            raise UsageError("--scores ranks the rows for --top; with --rows it is not read")
        check_not_an_input(plots, [model, features, scores])
        result = answer_stages.explain(model, features, _ids(rows), top_n, scores, k, plots, force)
        if as_json:
            _emit(strict_json(result))
            return
        if state["quiet"]:
            return
        stdout.print(f"{result['score']} score; per column: {result['method']}", markup=False, highlight=False)
        for entry in result["rows"]:
            title = (f"#{entry['rank']} " if entry.get("rank") else "") + f"id {entry['id']}"
            title += "".join(f", {name} {value}" for name, value in entry.get("id_columns", {}).items())
            title += f": score {entry['score']:.4g}"
            if entry["parts"]:
                title += " (" + ", ".join(f"{name} z {value:.2f}" for name, value in entry["parts"].items()) + ")"
            table = Table("column", "value", "expected", "share", title=title, title_justify="left")
            for c in entry["columns"]:
                table.add_row(str(c["column"]), _cell(c["value"]), _cell(c["expected"]), f"{100 * c['share']:.0f}%")
            stdout.print(table)
        for path in result.get("plots", []):
            stdout.print(f"wrote {path}", markup=False, highlight=False)
        if result.get("plots_not_drawn"):
            from deepuad.stages.plots import MAX_PLOTS

            stdout.print(f"{result['plots_not_drawn']} more rows not drawn: --plots draws at most {MAX_PLOTS} per run",
                         markup=False, highlight=False)


def _print_table(result: dict, console) -> None:
    """The rows as a table on the terminal: the first TABLE_ROWS of them, and the columns that fit."""
    from rich.table import Table

    from deepuad.stages.answers import RESERVED, cell, row_dicts

    rows = row_dicts(result, TABLE_ROWS)
    fixed = [c for c in result["columns"] if c in RESERVED]
    data = [c for c in result["columns"] if c not in fixed]

    def width(column):  # what a column takes: its widest cell or header, plus borders
        return 3 + max([len(column)] + [len(_cell(cell(row, column))) for row in rows])

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
        table.add_row(*(_cell(cell(row, c)) for c in fixed + shown))
    console.print(table)


def check_fail_options(fail_above: Optional[float], threshold: Optional[float], shard: Optional[str]) -> None:
    """Before scoring: --fail-above needs a share in [0, 1), a fixed --threshold and no --shard."""
    if fail_above is None:
        return
    if not 0 <= fail_above < 1:
        raise UsageError(f"--fail-above must be a share in [0, 1), e.g. 0.05, got {fail_above}")
    if shard is not None:
        raise UsageError("--fail-above needs every row: use it with merge-scores' output, not with --shard")
    if threshold is None:
        raise UsageError("--fail-above needs --threshold T: with a contamination the flagged share IS that contamination. "
                         "Take T from the training data's scores (deepuad inspect train.scores.h5 --json: summary.threshold)")


def check_fail_above(summary: dict, fail_above: Optional[float]) -> None:
    """After scoring (the scores file is written): AnomaliesAbove (exit 8) when the flagged
    share exceeds ``fail_above``."""
    if fail_above is None or summary.get("skipped"):
        return
    rows, flagged = int(summary["rows"]), int(summary["anomalies_flagged"])
    if rows and flagged / rows > fail_above:
        raise AnomaliesAbove(f"{flagged} of {rows} rows ({100 * flagged / rows:.2f}%) score above the threshold "
                             f"{summary['threshold']:.6g}, more than --fail-above {fail_above:g} (the scores file was written)",
                             summary["output"])
