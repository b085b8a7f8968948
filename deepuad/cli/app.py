"""The ``deepuad`` command line's frame: the typer app, global options, progress, reporting,
and the entry point that turns every error into one line and an exit code.

Exit codes (also in docs/exit-codes.md): see ``deepuad.errors``. Progress bars and warnings go to
stderr, summaries to stdout (one JSON object with ``--json``), so scripts can parse stdout.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
import traceback
import warnings

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deepuad import __version__, signals
from deepuad.estimators.constraints import ParamError
from deepuad.estimators.params import option_error, torchrun_environment
from deepuad.errors import (
    EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, DeepUADError, OutputError, Terminated, UsageError,
)

app = typer.Typer(
    name="deepuad",
    help="Deep end-to-end unsupervised anomaly detection, in stages: extract -> cluster -> train -> score.",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts say "[default: ...]": rich markup would swallow the brackets
)

def _stdout_closed() -> OutputError:
    """The error for a reader that went away (``deepuad inspect F | head -1``). Not an OSError:
    click turns a broken pipe into a silent exit 1, and rich into SystemExit(1)."""
    _silence_stdout()
    return OutputError("standard output was closed before all output was written (broken pipe)")


def _silence_stdout() -> None:
    """Point standard output's file descriptor at /dev/null, so that what is still buffered, and
    Python's own flush at exit, fail no more. (A stream without a descriptor, as in-process
    callers and tests give, is left alone.)"""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        target = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, target)
        os.close(null)


class _Stdout:
    """``sys.stdout`` while a command runs: every write that fails says so as an OutputError
    (exit 6, one line), whoever writes (print, csv, rich, click's help). A closed pipe
    (``| head -1``), a closed descriptor (``>&-``: Python then has no sys.stdout at all) and a
    full device (``> /dev/full``) all end the same way."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        if isinstance(text, str) and not text:  # click probes with write(""): nothing to write, nothing to fail
            return 0
        return self._call("write", text)

    def flush(self) -> None:
        if self.stream is not None:
            self._call("flush")

    def _call(self, name: str, *args):
        if self.stream is None:
            raise OutputError("standard output is closed (>&-): nowhere to write; redirect it to a file, "
                              "or pass -o FILE where the command offers it")
        try:
            return getattr(self.stream, name)(*args)
        except BrokenPipeError:
            raise _stdout_closed() from None
        except OSError as error:  # ENOSPC from /dev/full, EIO, ...
            _silence_stdout()
            raise OutputError(f"standard output cannot be written: {error.strerror or error}") from None

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise OSError("standard output is closed")
        return self.stream.fileno()

    def __getattr__(self, name):  # encoding, errors, buffer, ...
        if self.stream is None:
            raise AttributeError(name)
        return getattr(self.stream, name)


@contextlib.contextmanager
def _guarded_stdout():
    """Install _Stdout for the length of a command; in-process callers get theirs back."""
    previous = sys.stdout
    sys.stdout = _Stdout(previous)
    try:
        yield
    finally:
        sys.stdout = previous


class _Console(Console):
    def on_broken_pipe(self) -> None:
        raise _stdout_closed()


def _emit(text: str) -> None:
    """One line on stdout (the --json summary)."""
    print(text, flush=True)


stdout = _Console(soft_wrap=True)

stderr = _Console(stderr=True, soft_wrap=True)

state = {"quiet": False, "debug": False}

EXIT_HELP = "\n\n".join(f"{code}: {text}" for code, text in EXIT_CODES.items())

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
    state["quiet"], state["debug"] = quiet, debug
    if torchrun_environment()["WORLD_SIZE"] > 1 and ctx.invoked_subcommand != "train":
        # N copies of any other command would each do all the work and race for the same output
        raise UsageError(f"only 'train' runs under torchrun; run '{ctx.invoked_subcommand}' as one process "
                         "(score scales out with --shard I/N)")

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

OUTPUT_ARGUMENTS = ("output", "plots_dir")


def stage_inputs(kwargs: dict) -> list:
    """The files a stage is given: every path among its arguments but its outputs."""
    paths = []
    for name, value in kwargs.items():
        if name not in OUTPUT_ARGUMENTS:
            paths += [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, os.PathLike)]
    return paths


def _run_stage(function, as_json: bool, title: str, **kwargs) -> dict:
    from deepuad.stages._common import check_not_an_input

    for name in OUTPUT_ARGUMENTS:  # before any work: the output must be none of the files the stage reads
        check_not_an_input(kwargs.get(name), stage_inputs(kwargs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _Reporter(enabled=not state["quiet"] and not as_json) as reporter:
            summary = function(progress=reporter, **kwargs)
    for warning in caught:
        if not state["quiet"] and issubclass(warning.category, UserWarning):
            stderr.print(f"deepuad: warning: {warning.message}", markup=False, highlight=False)
    _report(summary, as_json, title)
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

def _report(summary: dict, as_json: bool, title: str) -> None:
    if as_json:
        _emit(strict_json(summary))
        return
    if state["quiet"]:
        return
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    stdout.print(table)

def main(argv: list[str] | None = None, exiting: bool = False) -> None:
    """Run the command line on ``argv``; ``exiting``: the process ends after it (``entry``), so
    signals are left ignored rather than given back to their handlers from before."""
    previous_handlers = signals.install()  # first: a signal before it would end the process the default way
    try:
        argv = _globals_first(list(sys.argv[1:] if argv is None else argv))
        with _guarded_stdout():
            code = _invoke(argv)
            if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent "return 130"; no command returns it otherwise
                _fail("terminated (SIGTERM)" if signals.terminated() else "interrupted", EXIT_INTERRUPTED)
            sys.stdout.flush()  # now, so that a closed pipe is reported here and not at interpreter exit
            signals.finished()  # all is out: a signal from now on changes neither the status nor stderr
        sys.exit(code if isinstance(code, int) else 0)
    except DeepUADError as error:
        _fail(str(error), error.exit_code)
    except ParamError as error:  # a parameter a command was given, named by its option
        _fail(str(option_error(error)), EXIT_USAGE)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt) as error:
        cause = error.__cause__ or error.__context__ if isinstance(error, typer.Abort) else error
        if isinstance(cause, EOFError):  # click turns an EOFError into Abort: a reader that missed one, not Ctrl-C
            if "--debug" in argv:
                traceback.print_exception(cause)
            _fail(f"internal error: EOFError: {cause} (rerun with --debug for the traceback)", EXIT_INTERNAL)
        _fail("terminated (SIGTERM)" if isinstance(cause, Terminated) else "interrupted", EXIT_INTERRUPTED)
    except Exception as error:
        if _is_click_usage_error(error):
            _fail(_usage_message(error, argv), getattr(error, "exit_code", EXIT_USAGE))
        # anything else is a bug: one line unless --debug
        if "--debug" in argv:
            traceback.print_exc()
        _fail(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)", EXIT_INTERNAL)
    finally:
        signals.restore(previous_handlers, ignore=exiting)  # in-process callers (tests, notebooks) get their handlers back


GLOBAL_FLAGS = ("--quiet", "-q", "--debug")


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
    group = typer.main.get_command(app)
    if position is None or argv[position] not in group.commands:
        return argv
    takes_value = {name for param in group.commands[argv[position]].params
                   if getattr(param, "param_type_name", "") == "option" and not param.is_flag and not param.count
                   for name in param.opts}
    moved, kept, previous = [], [], ""
    for index, token in enumerate(argv[position + 1:], position + 1):
        if token == "--":
            kept += argv[index:]
            break
        if token in GLOBAL_FLAGS and previous not in takes_value:
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
    group = typer.main.get_command(app)
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
    _hold_closed_stdout()
    try:
        main(argv, exiting=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_IGN)


def _hold_closed_stdout() -> None:
    """Under ``>&-`` descriptor 1 is free, and the next file opened (an output being written)
    would get it: whatever writes to descriptor 1 would then write into that file. /dev/null
    takes it instead; Python's sys.stdout stays None, so a command that prints still fails as
    on a closed stdout (exit 6)."""
    if sys.stdout is not None:
        return
    with contextlib.suppress(OSError):
        os.fstat(1)
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(os.devnull, os.O_WRONLY)
        if descriptor != 1:
            os.close(descriptor)


def _is_click_usage_error(error: Exception) -> bool:
    # Click's exceptions (typer >= 0.2x vendors its own copy of click, so match by shape, not class)
    return hasattr(error, "format_message") and any(c.__name__ == "ClickException" for c in type(error).__mro__)


def _fail(message: str, code: int) -> None:
    stderr.print(f"deepuad: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)
