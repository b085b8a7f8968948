"""The ``deepuad`` command line's frame: the typer app, global options, progress, reporting,
and the entry point that turns every error into one line and an exit code.

Exit codes (also in docs/exit-codes.md): see ``deepuad.errors``. Progress bars and warnings go to
stderr, summaries to stdout (one JSON object with ``--json``), so scripts can parse stdout.

The layers below the command line name parameters, not options (``deepuad.errors``); ``message``
is where a parameter's name becomes the option that sets it, and ``main`` where an error becomes
its exit code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import signal
import sys
import time
import traceback
import warnings

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deepuad import __version__, signals
from deepuad.cli.stdout import GuardedConsole, guarded_stdout, hold_closed_stdout
from deepuad.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, DeepUADError, ParamError, Terminated, UsageError
from deepuad.estimators.constraints import refusal
from deepuad.estimators.params import METHOD_OPTIONS, PARAMS, torchrun_environment

app = typer.Typer(
    name="deepuad",
    help="Deep end-to-end unsupervised anomaly detection, in stages: extract -> cluster -> train -> score.",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts say "[default: ...]": rich markup would swallow the brackets
)

stdout = GuardedConsole(soft_wrap=True)
stderr = GuardedConsole(stderr=True, soft_wrap=True)
state = {"quiet": False, "debug": False, "command": None}


def emit(text: str) -> None:
    """One line on stdout (the --json summary)."""
    print(text, flush=True)


@functools.cache
def _group():
    """The app as click sees it: its global options, and its commands, each with its options. Built
    once, when asked first: by then importing ``deepuad.cli`` has registered every command."""
    return typer.main.get_command(app)


def _print_version(value: bool) -> None:
    # an eager option callback: runs before click asks for a subcommand, so `deepuad --version` works alone
    if value:
        stdout.print(f"deepuad {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars, warnings or summaries (errors still go to stderr)."),
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of unexpected errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
):
    """Deep end-to-end unsupervised anomaly detection (ICLR 2020 submission), in inspectable stages.

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 input file, 4 data, 5 stale artifacts,
    6 output not writable, 7 device unavailable, 8 score --fail-above exceeded, 9 score --fail-on-drift
    exceeded, 130 interrupted.
    """
    state["quiet"], state["debug"], state["command"] = quiet, debug, ctx.invoked_subcommand
    if torchrun_environment()["WORLD_SIZE"] > 1 and ctx.invoked_subcommand != "train":
        # N copies of any other command would each do all the work and race for the same output
        raise UsageError(f"only 'train' runs under torchrun; run '{ctx.invoked_subcommand}' as one process "
                         "(score scales out with `shard` I/N)")


class _Reporter:
    """Progress on stderr: on a terminal a rich bar per task, with its ``status`` (train: the
    current loss); elsewhere (a pipe, a cron log) no bar (it means nothing in a log, and rich
    ends it with a line break that would open the error line) but each ``line`` (train: one per
    re-selection) with the seconds since the start. Silent with --quiet or --json."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.live = enabled and stderr.is_terminal
        self.started = time.monotonic()
        self.tasks: dict[str, int] = {}
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=stderr, transient=True,
        )

    def __enter__(self):
        self.started = time.monotonic()
        if self.live:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.bar.stop()

    def __call__(self, description: str, completed: int, total: int, status: str | None = None,
                 line: str | None = None) -> None:
        if not self.enabled:
            return
        if not self.live:
            if line:
                elapsed = time.monotonic() - self.started
                stderr.print(f"deepuad: progress: {description} {elapsed:.1f}s {line}", markup=False, highlight=False)
            return
        if description not in self.tasks:
            self.tasks[description] = self.bar.add_task(description, total=total or None)
        shown = {} if status is None else {"description": f"{description} ({status})"}
        self.bar.update(self.tasks[description], completed=completed, total=total or None, **shown)


# the stage parameters that name what a stage writes, never what it reads
OUTPUT_ARGUMENTS = ("output", "plots_dir")


def stage_inputs(kwargs: dict) -> list:
    """The files a stage is given: every path among its arguments but its outputs."""
    paths = []
    for name, value in kwargs.items():
        if name not in OUTPUT_ARGUMENTS:
            paths += [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, os.PathLike)]
    return paths


def run_stage(function, as_json: bool, title: str | None, **kwargs) -> dict:
    """Call the stage ``function`` with ``kwargs``, its progress on stderr and its warnings after it,
    and report its summary (``report``); return the summary."""
    from deepuad.stages._common import check_not_an_input

    for name in OUTPUT_ARGUMENTS:  # before any work: the output must be none of the files the stage reads
        check_not_an_input(kwargs.get(name), stage_inputs(kwargs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _Reporter(enabled=not state["quiet"] and not as_json) as reporter:
            summary = function(progress=reporter, **kwargs)
    for warning in caught:
        if not state["quiet"] and issubclass(warning.category, UserWarning):
            stderr.print(f"deepuad: warning: {spelled(str(warning.message))}", markup=False, highlight=False)
    report(summary, as_json, title)
    return summary


def strict_json(value) -> str:
    """``value`` as strict JSON: a NaN or infinity (a metric that is not defined, a marker
    stored in an artifact) becomes null, since a bare NaN is not JSON and breaks parsers."""
    return json.dumps(_finite_or_null(value), sort_keys=True, default=str, allow_nan=False)


def _finite_or_null(value):
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report(summary: dict, as_json: bool, title: str | None) -> None:
    """A summary on stdout: one JSON object with ``as_json``, else a table titled ``title`` (None:
    the summary holds several stages' summaries by name, ``run``'s: a table each)."""
    if as_json:
        emit(strict_json(summary))
        return
    if state["quiet"]:
        return
    for name, part in (summary.items() if title is None else [(title, summary)]):
        table = Table(title=name, show_header=False, title_justify="left")
        for key, value in part.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        stdout.print(table)


def cell_text(value) -> str:
    """A value in a table of rows (top, explain): "-" for none, a float to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------- errors: the one place they become
# what the command line says: a parameter's name its option, an error its exit code
NAMED = re.compile(r"`(\w+)`")  # a parameter a message names (deepuad.errors)
SPECIFIED = {param.name: param for param in PARAMS + METHOD_OPTIONS if param.commands}  # the spec's options


def option_names(command: str | None) -> dict[str, str]:
    """Parameter name -> how the command line spells it: its option's first name (an argument: its
    metavar) in ``command``, else its option's in any command."""
    group = _group()
    names: dict[str, str] = {}
    mine = [group.commands[command]] if command in group.commands else []
    for cmd in mine + [group, *group.commands.values()]:
        for param in cmd.params:
            if getattr(param, "param_type_name", "") == "option":
                names.setdefault(param.name, param.opts[0])
            elif cmd in mine:
                names.setdefault(param.name, param.metavar or param.name)
    return names


def spelled(text: str) -> str:
    """``text`` with each parameter it names (`name`) spelled as the running command's option."""
    names = option_names(state["command"])
    return NAMED.sub(lambda found: names.get(found[1], found[1]), text)


def message(error: DeepUADError) -> str:
    """``error``'s line as the command line says it: each parameter it names as its option, and a
    value the option spells otherwise (0 for None: ``--reselect-sample 0``) as the option spells it."""
    if not isinstance(error, ParamError):
        return spelled(str(error))
    param, problem = SPECIFIED.get(error.name), error.problem
    if param is not None and param.cli_none is not None and error.constraints:
        problem = refusal(error.constraints, error.value, none=str(param.cli_none))
    return spelled(f"`{error.name}` {problem}")


def main(argv: list[str] | None = None, exiting: bool = False) -> None:
    """Run the command line on ``argv``; ``exiting``: the process ends after it (``entry``), so
    signals are left ignored rather than given back to their handlers from before."""
    previous_handlers = signals.install()  # first: a signal before it would end the process the default way
    argv, debug = list(sys.argv[1:] if argv is None else argv), False
    state["command"] = None  # until the command line names one
    try:
        debug = bool(set(argv) & _flags_of(("debug",)))  # read here: an error may come before the option is parsed
        argv = _globals_first(argv)
        with guarded_stdout():
            code = _invoke(argv)
            if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent "return 130"; no command returns it otherwise
                _fail_interrupted(signals.terminated())
            sys.stdout.flush()  # now, so that a closed pipe is reported here and not at interpreter exit
            signals.finished()  # all is out: a signal from now on changes neither the status nor stderr
        sys.exit(code if isinstance(code, int) else 0)
    except DeepUADError as error:
        caused_by = _interrupt_within(error)
        if caused_by is not None:  # what the interrupt broke (h5py reports one raised in its callback as a corrupt read)
            _fail_interrupted(isinstance(caused_by, Terminated))
        _fail(message(error), error.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt) as error:
        cause = error.__cause__ or error.__context__ if isinstance(error, typer.Abort) else error
        if isinstance(cause, EOFError):  # click turns an EOFError into Abort: a reader that missed one, not Ctrl-C
            if debug:
                traceback.print_exception(cause)
            _fail(f"internal error: EOFError: {cause} (rerun with --debug for the traceback)", EXIT_INTERNAL)
        _fail_interrupted(isinstance(cause, Terminated))
    except Exception as error:
        if _is_click_usage_error(error):
            _fail(_usage_message(error, argv), getattr(error, "exit_code", EXIT_USAGE))
        wrapped = _interrupt_within(error)
        if wrapped is not None:  # Python wrapped the interrupt (raised inside __set_name__, say): still an interrupt
            _fail_interrupted(isinstance(wrapped, Terminated))
        # anything else is a bug: one line unless --debug
        if debug:
            traceback.print_exc()
        _fail(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)", EXIT_INTERNAL)
    finally:
        signals.restore(previous_handlers, ignore=exiting)  # in-process callers (tests, notebooks) get their handlers back


def _interrupt_within(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM that ``error`` was raised from, if any: a signal's exception raised
    where Python turns it into another error (class creation's ``__set_name__`` into a RuntimeError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


GLOBAL_OPTIONS = ("quiet", "debug")  # the global options accepted after the command too


def _flags_of(names) -> set[str]:
    """The flags of the global options ``names``."""
    return {flag for param in _group().params if param.name in names for flag in param.opts}


def _invoke(argv: list[str]):
    """The app on ``argv``. Bare ``deepuad`` prints the help on stdout (exit 2, as click's
    no_args_is_help), not as an error line."""
    try:
        return app(args=argv, prog_name="deepuad", standalone_mode=False)
    except Exception as error:
        if type(error).__name__ != "NoArgsIsHelpError":
            raise
        print(error.format_message())
        return EXIT_USAGE


def _globals_first(argv: list[str]) -> list[str]:
    """``deepuad extract x.csv --quiet`` as ``deepuad --quiet extract x.csv``: the global flags
    are accepted after the command too. A token that is the value of the command's own option
    (``--drop --quiet``) stays where it is, and nothing after ``--`` moves."""
    position = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)
    group = _group()
    if position is None or argv[position] not in group.commands:
        return argv
    takes_value = {name for param in group.commands[argv[position]].params
                   if getattr(param, "param_type_name", "") == "option" and not param.is_flag and not param.count
                   for name in param.opts}
    global_flags = _flags_of(GLOBAL_OPTIONS)
    moved, kept, previous = [], [], ""
    for index, token in enumerate(argv[position + 1:], position + 1):
        if token == "--":
            kept += argv[index:]
            break
        if token in global_flags and previous not in takes_value:
            moved.append(token)
        else:
            kept.append(token)
        previous = token
    return argv[:position] + moved + [argv[position]] + kept


def _usage_message(error, argv: list[str]) -> str:
    """Click's message on one line; an option of a command given before the command (``deepuad
    --json inspect F``) is told where it goes."""
    message = " ".join(error.format_message().split())
    option = getattr(error, "option_name", None)
    group = _group()
    command = next((token for token in argv if token in group.commands), None)
    if option in argv and command is not None and argv.index(option) < argv.index(command) \
            and any(option in param.opts for param in group.commands[command].params):
        message += f" (an option of '{command}': put it after the command, e.g. deepuad {command} ... {option})"
    return message


def entry(argv: list[str] | None = None) -> None:
    """The process entry (the ``deepuad`` script, ``python -m deepuad``): ``main``, then no signal
    handling while the interpreter exits. By then the command has finished and chosen its exit
    status; a Ctrl-C or SIGTERM landing in Python's own shutdown would print a traceback from
    whatever finaliser it interrupts ("Exception ignored in ...") or kill the process with another
    status. ``main`` alone is for in-process callers, whose handlers it leaves as they were."""
    hold_closed_stdout()
    try:
        main(argv, exiting=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_IGN)


def _is_click_usage_error(error: Exception) -> bool:
    # Click's exceptions (typer >= 0.2x vendors its own copy of click, so match by shape, not class)
    return hasattr(error, "format_message") and any(c.__name__ == "ClickException" for c in type(error).__mro__)


def _fail(message: str, code: int) -> None:
    stderr.print(f"deepuad: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def _fail_interrupted(terminated: bool) -> None:
    """End as a SIGTERM (``terminated``) or a Ctrl-C ends a command: one line, exit 130."""
    _fail("terminated (SIGTERM)" if terminated else "interrupted", EXIT_INTERRUPTED)
