"""Standard output while a command runs: every write that fails (a reader that went away, a closed
descriptor, a full device) ends the command as an OutputError (exit 6, one line), whoever writes."""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console

from deepuad.errors import OutputError


def stdout_closed() -> OutputError:
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
                              "or pass `output` FILE where the command offers it")
        try:
            return getattr(self.stream, name)(*args)
        except BrokenPipeError:
            raise stdout_closed() from None
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
def guarded_stdout():
    """Install _Stdout for the length of a command; in-process callers get theirs back."""
    previous = sys.stdout
    sys.stdout = _Stdout(previous)
    try:
        yield
    finally:
        sys.stdout = previous


class GuardedConsole(Console):
    """A rich console whose closed pipe is an OutputError, not rich's silent exit."""

    def on_broken_pipe(self) -> None:
        raise stdout_closed()


def hold_closed_stdout() -> None:
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
