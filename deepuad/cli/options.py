"""The options that several commands share, and the options of the parameter spec: every option
of ``params.PARAMS`` and ``params.METHOD_OPTIONS`` is built from its entry there (flag, default,
help), added to the commands that offer it by ``with_spec_options`` and turned into the
parameter's value by ``spec_values``."""

from __future__ import annotations

import inspect
import re
from typing import Optional

import typer

from deepuad.errors import UsageError
from deepuad.estimators.params import (  # standard library only: no NumPy or torch at start-up
    LIMITS, PAPER_READING, SPEC, Param, flag, options_of,
)


JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (the summary) on stdout instead of tables.")


def spec_option(param: Param):
    """The typer option of a spec'd parameter: its flags, default and help as the spec declares them."""
    return typer.Option(param.cli_default, *param.option_names, help=param.help, max=param.most)


SEED_OPTION = spec_option(SPEC["seed"])
CONTAMINATION_OPTION = spec_option(SPEC["contamination"])


DEVICE_OPTION = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")


THREADS_OPTION = typer.Option(
    None, "--threads", help="CPU threads for torch/BLAS. Default: 1 on machines with <= 2 cores, else half the cores (max 8)."
)


PAPER_OPTION = typer.Option(
    False, "--paper", help="The paper's literal reading: percentile over clusters for both selections, tol 0 and the cosine "
    "score (overrides --percentile-over, --tol and --score).")


CLUSTER_PAPER_OPTION = typer.Option(
    False, "--paper", help="The paper's literal reading of the initial selection: percentile over clusters (overrides --percentile-over).")


def _csv(value: Optional[str]) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _id_columns(values: Optional[list[str]]) -> list[str]:
    """--id-column, repeated and/or comma-separated."""
    return [column for value in values or [] for column in _csv(value)]


def _size(value: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 32x32 (height x width), got {value!r}") from None
    if height < 1 or width < 1:
        raise UsageError(f"--size must be positive, got {value!r}")
    if max(height, width) > LIMITS["image_side"]:
        raise UsageError(f"--size is at most {LIMITS['image_side']} pixels a side, got {value!r}")
    return height, width


def _shard(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", value.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise UsageError(f"--shard must be I/N with 0 <= I < N, e.g. 0/4, got {value!r}")
    return int(match[1]), int(match[2])


# used by a stage command and by run (one definition, help included)
LABEL_COLUMN_OPTION = typer.Option(None, "--label-column", help="Ground-truth column: stored as y, never used as a feature.")
ANOMALY_VALUES_OPTION = typer.Option(None, "--anomaly-values", help="Comma-separated label values meaning anomaly (0/1 labels need none).")
CATEGORICAL_OPTION = typer.Option(None, "--categorical", help="Comma-separated columns to one-hot even if numeric.")
DROP_OPTION = typer.Option(None, "--drop", help="Comma-separated columns to ignore.")
MISSING_OPTION = typer.Option(
    None, "--missing", help="A gap (empty cell, null, NaN): error (refuse it), drop (leave its row out; rows listed in the "
    "summary and the features file) or fill (a numeric column's median; a gap in a text column is a category of its own) "
    "[default: error; with --like: the features file's].")
ID_COLUMN_OPTION = typer.Option(
    None, "--id-column", help="A column that identifies rows and is no feature (a host name, a timestamp): carried as text "
    "to the scores, top and explain. Repeat it, or separate columns with commas.")
SCALE_OPTION = typer.Option(None, "--scale", help="minmax, standard or none [default: minmax for tables and arrays, none for pixels and video].")


def with_spec_options(command: str, after: str):
    """Add the options of every parameter that ``command`` offers (params.options_of) to its
    signature, after its parameter ``after`` (typer reads the signature); the command receives
    them, named as the parameters, in its ``**options``."""
    def decorate(function):
        signature = inspect.signature(function)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        at = [p.name for p in own].index(after) + 1
        added = [inspect.Parameter(param.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=spec_option(param),
                                   annotation=param.option_type) for param in options_of(command)]
        function.__signature__ = signature.replace(parameters=own[:at] + added + own[at:])
        return function
    return decorate


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
        raise UsageError(f"{flag('epochs')} {epochs} with {flag('r')} {r} asks for {epochs // r:,} re-selections "
                         f"(at most {LIMITS['reselections']:,}); raise {flag('r')}")
    return values


# the options that only some methods use (their help text starts "gmm/kmeans: ...", "ae: ..."):
# option -> the methods that use it. Given with another method, such an option would be ignored.
CLUSTER_METHOD_OPTIONS = {param.flag: param.methods for param in options_of("cluster") if param.methods}
BASELINE_METHOD_OPTIONS = {
    "--epochs": ("ae", "dagmm"), "--batch-size": ("ae", "dagmm"), "--lr": ("ae", "dagmm"), "--layers": ("ae",),
    "--activation": ("ae",), "--max-train-samples": ("ocsvm",),
}


def refuse_unused(ctx: typer.Context, method: str, uses: dict[str, tuple[str, ...]]) -> None:
    """UsageError for an option typed on the command line that ``--method METHOD`` does not use:
    ignored, it would leave a run that is not the one asked for."""
    for param in ctx.command.params:
        option = next((name for name in param.opts if name in uses), None)
        if option and method not in uses[option] and ctx.get_parameter_source(param.name).name == "COMMANDLINE":
            raise UsageError(f"{option} applies to --method {' or '.join(uses[option])} only, not {method}")


def check_option(option: str, value, test, requirement: str) -> None:
    """UsageError "<option> must be <requirement>, got <value>" unless ``test(value)``."""
    if not test(value):
        raise UsageError(f"{option} must be {requirement}, got {value!r}")
