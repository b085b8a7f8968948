"""``deepuad explain``: why rows score high, in their original columns."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, cell_text, emit, state, stdout, strict_json
from deepuad.cli.options import ColumnCount, Force, Json, Plots, comma_list
from deepuad.errors import UsageError
from deepuad.stages.defaults import EXPLAIN, EXPLAIN_TOP

HELP = """Why rows score high: per row, the original columns that contribute most to its score,
and the value the model expected there.

A column's contribution is how much the row's whole score (every part of it: reconstruction
error, isolation forest, ...) falls when that column alone is set to its expected value (a
text column's one-hot group as a whole); share: over the positive contributions. 'expected':
over the 5 kept training rows nearest the row in its other columns, the column's median or
most common category (for --score cosine, which keeps no rows: the reconstruction). A column
holding its expected value contributes 0. Each row also shows each score part's robust z-score."""

EXAMPLES = """Examples:

  deepuad explain kdd.model.h5 kdd.features.h5 --top 5

  deepuad explain kdd.model.h5 kdd.features.h5 --rows 17,4096 --plots why/

  deepuad explain photos.model.h5 photos.features.h5 --rows cats/001.png --json
"""


PlotsFolder = Plots("Folder for one bar-chart PNG per row.")
ForceEncoding = Force("Explain features encoded differently from the training data anyway.")
RowColumns = ColumnCount("Columns shown per row.")


@app.command(help=HELP, epilog=EXAMPLES)
def explain(
    model_path: Annotated[Path, typer.Argument(metavar="model", help="A model file from 'deepuad train'.")],
    features_path: Annotated[Path, typer.Argument(metavar="features", help="Features encoded like the model's training data.")],
    rows: Annotated[Optional[list[str]], typer.Option(
        "--rows", help="Row ids to explain, comma-separated (the ids extract recorded: row numbers, image paths, "
        "video#segment).")] = None,
    top_n: Annotated[Optional[int], typer.Option(
        "--top", help=f"Explain the N highest-scoring rows [default: {EXPLAIN_TOP} when --rows is not given].")] = None,
    scores_path: Annotated[Optional[Path], typer.Option(
        "--scores", help="With --top: rank by this scores file instead of scoring every row again.")] = None,
    k: RowColumns = EXPLAIN["k"],
    plots_dir: PlotsFolder = None,
    force: ForceEncoding = False,
    as_json: Json = False,
):
    from rich.table import Table

    from deepuad.estimators.parts import PARTS
    from deepuad.stages._common import check_not_an_input
    from deepuad.stages.answers import explain as stage

    def part_text(name: str, value: float) -> str:
        """A standardised part by its z-score; the range by the ranges it adds to the score."""
        return f"{name} z {value:.2f}" if getattr(PARTS.get(name), "standardised", True) else f"{name} +{value:.2f}"

    if rows and scores_path is not None:
        raise UsageError("`scores_path` ranks the rows for `top_n`; with `rows` it is not read")
    check_not_an_input(plots_dir, [model_path, features_path, scores_path])
    result = stage(model_path, features_path, [v for value in rows or [] for v in comma_list(value)], top_n, scores_path,
                   k, plots_dir, force)
    if as_json:
        emit(strict_json(result))
        return
    if state["quiet"]:
        return
    stdout.print(f"{result['score']} score; per column: {result['method']}", markup=False, highlight=False)
    for entry in result["rows"]:
        title = (f"#{entry['rank']} " if entry.get("rank") else "") + f"id {entry['id']}"
        title += "".join(f", {name} {value}" for name, value in entry.get("id_columns", {}).items())
        title += f": score {entry['score']:.4g}"
        if entry["parts"]:
            title += " (" + ", ".join(part_text(name, value) for name, value in entry["parts"].items()) + ")"
        table = Table("column", "value", "expected", "share", title=title, title_justify="left")
        for c in entry["columns"]:
            table.add_row(str(c["column"]), cell_text(c["value"]), cell_text(c["expected"]), f"{100 * c['share']:.0f}%")
        stdout.print(table)
    for path in result.get("plots", []):
        stdout.print(f"wrote {path}", markup=False, highlight=False)
    if result.get("plots_not_drawn"):
        from deepuad.stages.plots import MAX_PLOTS

        stdout.print(f"{result['plots_not_drawn']} more rows not drawn: --plots draws at most {MAX_PLOTS} per run",
                     markup=False, highlight=False)
