"""Errors that end a command with a one-line message and a documented exit code.

The CLI turns a ``DeepUADError`` into ``deepuad: error: <message>`` on stderr and
``sys.exit(error.exit_code)``; anything else is a bug (exit 1, traceback only with --debug).

A message names a parameter by its name in backticks (```contamination```), or, for a
``ParamError``, by its ``name``: the layers below the command line know parameters, not flags,
and the CLI shows each as the option that sets it (``--contamination``).
"""

from __future__ import annotations

from pathlib import Path

# Exit codes are part of the command contract: scripts branch on them. Never renumber.
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug in deepuad: please report it
EXIT_USAGE = 2  # bad command line: unknown option, invalid value
EXIT_INPUT = 3  # an input file is missing, unreadable, not what it should be, or corrupt
EXIT_DATA = 4  # the data itself is unusable: NaN/inf, empty, wrong width, ...
EXIT_STALE = 5  # artifacts do not belong together (made from other inputs or encoding)
EXIT_OUTPUT = 6  # the output cannot be written (permissions, disk full, locked)
EXIT_DEVICE = 7  # the requested device (e.g. CUDA) is not available
EXIT_ANOMALIES = 8  # score --fail-above: more rows flagged than the given share (the output WAS written)
EXIT_DRIFT = 9  # score --fail-on-drift: the data moved from the training data beyond the given PSI (the output WAS written)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT, and SIGTERM (timeout, cron, docker stop) likewise

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug; rerun with --debug and report it)",
    EXIT_USAGE: "invalid command line or option value",
    EXIT_INPUT: "input file missing, unreadable, of the wrong kind or corrupt",
    EXIT_DATA: "unusable data (NaN/inf, empty, wrong width, ...)",
    EXIT_STALE: "stale or mismatched artifacts (use --force where offered)",
    EXIT_OUTPUT: "output cannot be written",
    EXIT_DEVICE: "requested device not available",
    EXIT_ANOMALIES: "score --fail-above: more anomalies than the given share (scores written)",
    EXIT_DRIFT: "score --fail-on-drift: the data drifted from the training data (scores written)",
    EXIT_INTERRUPTED: "interrupted",
}


class DeepUADError(Exception):
    """An expected failure: one line for the user, one exit code for scripts."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        # one line, always: messages quote library errors (torch, HDF5) that span several
        message = " ".join(str(message).split())
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class RequestError(DeepUADError, ValueError):
    """Exit 2: what was asked for is refused: parameters that exclude each other, a setting of
    the environment, an optional package the request needs. A ValueError: a caller from Python
    catches it as it would any refused argument."""

    exit_code = EXIT_USAGE


class ParamError(RequestError):
    """A parameter's value is refused: "<name> <problem>" ("lr must be a positive number, got -1").
    ``name``, ``problem`` (without the name) and ``constraints`` and ``value`` (where they were
    checked) let the command line say the same of its option."""

    def __init__(self, name: str, problem: str, constraints=(), value=None):
        self.name, self.constraints, self.value = name, tuple(constraints), value
        super().__init__(f"{name} {problem}")
        self.problem = " ".join(str(problem).split())


class UsageError(RequestError):
    """Exit 2: the command line itself is wrong: options that exclude each other, a value it
    cannot parse. The layers below the command line raise its parent, RequestError."""


class InputError(DeepUADError):
    """Exit 3: an input file is missing or unreadable, is not the artifact expected, or is
    corrupt."""

    exit_code = EXIT_INPUT


class DataError(DeepUADError):
    """Exit 4: the data itself is unusable (NaN or infinite values, no rows, the wrong width),
    or training diverged on it; ``--lr`` and the like can help, another file may."""

    exit_code = EXIT_DATA


class StaleError(DeepUADError):
    """Exit 5: artifacts that do not belong together."""

    exit_code = EXIT_STALE


class OutputError(DeepUADError):
    """Exit 6: the output cannot be written: a missing folder, permissions, a full disk, one
    of the command's inputs, a device or FIFO, another writer holding the folder, a closed
    standard output."""

    exit_code = EXIT_OUTPUT


class DeviceError(DeepUADError):
    """Exit 7: the requested device (``--device cuda``) is not available."""

    exit_code = EXIT_DEVICE


class AnomaliesAbove(DeepUADError):
    exit_code = EXIT_ANOMALIES


class DriftAbove(DeepUADError):
    exit_code = EXIT_DRIFT


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that it takes the same clean-up path (temporary
    files removed, exit 130) instead of killing the process mid-write."""
