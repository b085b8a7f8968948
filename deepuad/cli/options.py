"""The options several commands share, declared once as ``Annotated`` aliases, and the options of
the parameter spec: every option of ``params.PARAMS`` and ``params.METHOD_OPTIONS`` is built from
its entry there (flag, default, help) by ``with_spec_options`` and turned into the parameter's
value by ``spec_values``. An option whose help differs by command (-o, --force, ...) is a function
of its help; a command names what it makes of it at its top. A command's parameters are named as
its stage's, so that the stage's errors, which name parameters, name the command's options
(``app.message``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.errors import ParamError, UsageError
from deepuad.estimators.params import LIMITS, PAPER_READING, Param, options_of  # standard library only: no NumPy at start-up


def Output(help: str):
    """-o/--output: the file a command writes; ``help`` says which, and its default name."""
    return Annotated[Optional[Path], typer.Option("-o", "--output", help=help)]


def Force(help: str):
    """--force: use inputs that do not belong together anyway; ``help`` says which."""
    return Annotated[bool, typer.Option("--force", help=help)]


def ModelOption(help: str):
    """--model: a model file a command reads besides its arguments (default: the one recorded)."""
    return Annotated[Optional[Path], typer.Option("--model", help=help)]


def Plots(help: str):
    """--plots: the folder a command draws its PNG plots in."""
    return Annotated[Optional[Path], typer.Option("--plots", help=help)]


def RowCount(help: str):
    """-n: how many rows, highest score first."""
    return Annotated[int, typer.Option("-n", "--n", help=help)]


def ColumnCount(help: str):
    """-k: how many columns each row is explained by."""
    return Annotated[int, typer.Option("-k", help=help)]


ForceRecorded = Force("Use features (or a model) other than those the scores were made from.")
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
Threshold = Annotated[Optional[float], typer.Option("--threshold", help="Flag rows with score above this value.")]
RecordedFeatures = Annotated[Optional[Path], typer.Option(
    "--features", help="The features file the scores came from [default: the one the scores file records].")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads for torch/BLAS. Default: 1 on machines with <= 2 cores, else half the cores (max 8).")]
Paper = Annotated[bool, typer.Option(
    "--paper", help="The paper's literal reading: percentile over clusters for both selections, tol 0 and the cosine "
    "score (overrides --percentile-over, --tol and --score).")]
ClusterPaper = Annotated[bool, typer.Option(
    "--paper", help="The paper's literal reading of the initial selection: percentile over clusters (overrides --percentile-over).")]

# the table options of extract, which run offers too
LabelColumn = Annotated[Optional[str], typer.Option(
    "--label-column", help="Ground-truth column: stored as y, never used as a feature.")]
AnomalyValues = Annotated[Optional[str], typer.Option(
    "--anomaly-values", help="Comma-separated label values meaning anomaly (0/1 labels need none).")]
Categorical = Annotated[Optional[str], typer.Option("--categorical", help="Comma-separated columns to one-hot even if numeric.")]
Drop = Annotated[Optional[str], typer.Option("--drop", help="Comma-separated columns to ignore.")]
Missing = Annotated[Optional[str], typer.Option(
    "--missing", help="A gap (empty cell, null, NaN): error (refuse it), drop (leave its row out; rows listed in the "
    "summary and the features file) or fill (a numeric column's median; a gap in a text column is a category of its own) "
    "[default: error; with --like: the features file's].")]
IdColumns = Annotated[Optional[list[str]], typer.Option(
    "--id-column", help="A column that identifies rows and is no feature (a host name, a timestamp): carried as text "
    "to the scores, top and explain. Repeat it, or separate columns with commas.")]
Scale = Annotated[Optional[str], typer.Option(
    "--scale", help="minmax, standard or none [default: minmax for tables and arrays, none for pixels and video].")]


def comma_list(value: Optional[str]) -> list[str]:
    """A comma-separated option's values."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def table_options(categorical, drop, label_column, anomaly_values, scale, missing, id_columns) -> dict:
    """The table options' values, as extract takes them (``id_columns``: repeated and/or comma-separated)."""
    return dict(categorical=comma_list(categorical), drop=comma_list(drop), label_column=label_column,
                anomaly_values=comma_list(anomaly_values) or None, scale=scale, missing=missing,
                id_columns=[column for value in id_columns or [] for column in comma_list(value)])


def parse_size(value: str) -> tuple[int, int]:
    """--size's HEIGHTxWIDTH."""
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ParamError("size", f"must look like 32x32 (height x width), got {value!r}") from None
    if height < 1 or width < 1:
        raise ParamError("size", f"must be positive, got {value!r}")
    if max(height, width) > LIMITS["image_side"]:
        raise ParamError("size", f"is at most {LIMITS['image_side']} pixels a side, got {value!r}")
    return height, width


def parse_shard(value: Optional[str]) -> Optional[tuple[int, int]]:
    """--shard's I/N."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", value.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise ParamError("shard", f"must be I/N with 0 <= I < N, e.g. 0/4, got {value!r}")
    return int(match[1]), int(match[2])


def spec_parameter(param: Param) -> inspect.Parameter:
    """A spec'd parameter as a command's parameter, exactly as it would be written by hand:
    ``name: Annotated[type, typer.Option(*flags, help=..., max=...)] = default``."""
    option = typer.Option(*param.option_names, help=param.help, max=param.most)
    return inspect.Parameter(param.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=param.cli_default,
                             annotation=Annotated[param.option_type, option])


def with_spec_options(command: str, after: str):
    """Give a command the options of every parameter it offers in the spec (``params.options_of``):
    typer reads a command's options from its signature, so they are added there, after the
    command's parameter ``after``; the command receives them, named as the parameters, in its
    ``**options``."""
    def add(function):
        signature = inspect.signature(function)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        at = [p.name for p in own].index(after) + 1
        spec = [spec_parameter(param) for param in options_of(command)]
        function.__signature__ = signature.replace(parameters=own[:at] + spec + own[at:])
        return function
    return add


def spec_values(command: str, options: dict, paper: bool = False) -> dict:
    """The parameters' values from the options of ``command`` (``with_spec_options``' ``**options``): text
    parsed, the value standing for None made None, and with ``paper`` the paper's reading
    (params.PAPER_READING) of those among them. A value is checked where it is used (the stage):
    here only what sizes memory (LIMITS), before any work."""
    params = {param.name: param for param in options_of(command)}
    values = {name: params[name].from_option(value) for name, value in options.items()}
    if paper:
        values.update({name: value for name, value in PAPER_READING.items() if name in values})
    epochs, r = values.get("epochs"), values.get("r")
    if epochs is not None and r is not None and r >= 1 and epochs // r > LIMITS["reselections"]:  # each one a record the model keeps
        raise UsageError(f"`epochs` {epochs} with `r` {r} asks for {epochs // r:,} re-selections "
                         f"(at most {LIMITS['reselections']:,}); raise `r`")
    return values


# the options that only some methods use (their help text starts "gmm/kmeans: ...", "ae: ..."):
# parameter -> the methods that use it. Given with another method, such an option would be ignored.
CLUSTER_METHOD_OPTIONS = {param.name: param.methods for param in options_of("cluster") if param.methods}
BASELINE_METHOD_OPTIONS = {"epochs": ("ae", "dagmm"), "batch_size": ("ae", "dagmm"), "lr": ("ae", "dagmm"), "layers": ("ae",),
                           "activation": ("ae",), "max_train_samples": ("ocsvm",)}


def refuse_unused(ctx: typer.Context, chooser: str, uses: dict[str, tuple[str, ...]]) -> None:
    """UsageError for an option typed on the command line that the method (the command's parameter
    ``chooser``) does not use: ignored, it would leave a run that is not the one asked for."""
    method = ctx.params[chooser]
    for param in ctx.command.params:
        methods = uses.get(param.name, (method,))
        if method not in methods and ctx.get_parameter_source(param.name).name == "COMMANDLINE":
            raise UsageError(f"`{param.name}` applies to `{chooser}` {' or '.join(methods)} only, not {method}")
