"""Ctrl-C and SIGTERM end a command cleanly, also when they arrive inside Python code that
native code called: ``install`` for the command line, ``raise_held_back`` for writers about to
rename their output into place, ``resend_later`` for other handlers that hold a signal back.
Standard library only: the command line imports it at start-up.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import sys
import threading
import time

from deepuad.errors import Terminated

# the signals held back, to be sent again once raising them may be safe (their tokens: resend_later);
# the unraisable hook before ours
_deferred: list = []
_previous_unraisablehook = [sys.unraisablehook]
_terminated = [False]
# whether our handlers are in place; held while a signal is sent again, so that none is sent once
# they are not or once its token is revoked
_installed = [False]
_sending = threading.Lock()
# the one thread that sends signals again (start_resender), and what it is to send: (when, token)
_resender: list = [None]
_requests: queue.SimpleQueue = queue.SimpleQueue()
# a signal is held back (sent again every 10 ms) until this time.monotonic(): for OUTPUT_GRACE
# seconds after an output is put in place, so that a command whose work ends with that output, as
# most do, finishes (exit 0, the new output) instead of reporting an interruption (exit 130, which
# promises the old output), and one that works on gets the signal then; and for ENDING_GRACE
# seconds after an interrupt is raised, so that another signal cannot break into the command's end
OUTPUT_GRACE, ENDING_GRACE = 0.25, 1.0
_hold_until = [-math.inf]
# whether the command has done its work and chosen its exit status: signals are held back, then dropped
_finished = [False]


def install() -> dict:
    """Ctrl-C (SIGINT) and SIGTERM (timeout, cron supervisors, docker stop) end the command the
    same way: temporary files removed, the old output kept, exit 130. Left alone where someone
    chose to ignore them (a shell without job control ignores SIGINT in background jobs), or
    outside the main thread (signals cannot be set there). Returns what ``restore`` needs.

    Python runs a handler between any two bytecodes, also in Python code that native code
    called: torch's C++ calling the import machinery or its own Python, a weakref callback or a
    ``__del__`` run by the garbage collector. An exception raised there either aborts the process
    (pybind11 throws it through C++ that cannot pass it on: "terminate called after throwing an
    instance of 'pybind11::error_already_set'", SIGABRT) or is printed and dropped ("Exception
    ignored in ...", and the command ends with exit 0). So the handler raises only where that
    cannot happen and otherwise sends the signal again 10 ms later (``_raise_where_safe``), and
    an exception dropped anyway is sent again too (``_unraisable``)."""
    previous: dict = {}
    _terminated[0], _finished[0], _hold_until[0] = False, False, -math.inf
    _installed[0] = True  # first: a signal landing in here is held back (_HOLDING_BACK) and sent again
    with contextlib.suppress(ValueError, OSError, AttributeError):
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
                previous[signum] = signal.signal(signum, _raise_where_safe)
    if previous:
        previous["unraisablehook"] = _previous_unraisablehook[0] = sys.unraisablehook
        sys.unraisablehook = _unraisable
        start_resender()  # after the handlers, not before: until they are in place a signal kills
    else:
        _installed[0] = False
    return previous


def restore(previous: dict, ignore: bool = False) -> None:
    """The handlers (and unraisable hook) from before ``install``, or with ``ignore`` (a process
    about to exit) no handling of the signals at all, so that none lands in between with the
    default handler and kills the process; a signal still held back is dropped: the command has
    ended."""
    with _sending:  # a signal sent again now would otherwise reach the default handler: killed
        _installed[0] = False
        _revoke(_deferred)
        _deferred.clear()
    for key, handler in previous.items():
        if key == "unraisablehook":
            sys.unraisablehook = handler
        else:
            signal.signal(key, signal.SIG_IGN if ignore else handler)


def placing_output() -> None:
    """An output is about to be renamed into place: a signal in the next OUTPUT_GRACE seconds is
    held back (called after ``raise_held_back``, just before the rename)."""
    _hold_until[0] = time.monotonic() + OUTPUT_GRACE


def finished() -> None:
    """The command has done its work and chosen its exit status: a signal from now on is held
    back, and dropped by ``restore``."""
    _finished[0] = True


def terminated() -> bool:
    """Whether a SIGTERM (rather than a Ctrl-C) came since ``install``."""
    return _terminated[0]


def raise_held_back() -> None:
    """Raise now a signal that is held back, waiting to be sent again: for a writer about to
    rename its finished temporary file into place, so that an interrupted command never ends
    (exit 130) having replaced its output. Cancels its re-sending."""
    with _sending:  # one sent already is on its way to the handler, not raised here too
        waiting = _revoke(_deferred)
        _deferred.clear()
    if waiting:
        raise _interrupt(signal.SIGTERM if signal.SIGTERM in waiting else signal.SIGINT)


def _raise_where_safe(signum, frame) -> None:
    if _finished[0]:
        _deliver_later(signum)
        return
    if signum == signal.SIGTERM:
        _terminated[0] = True
    if _called_from_native_code(frame) or time.monotonic() < _hold_until[0]:
        _deliver_later(signum)
        return
    raise _interrupt(signum)


def _interrupt(signum: int) -> KeyboardInterrupt:
    """The exception that ends the command for ``signum``; signals are held back while it does."""
    _hold_until[0] = time.monotonic() + ENDING_GRACE
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


# packages whose native code runs Python code and the signal handlers (torch's C++ through
# pybind11, h5py's Cython): an exception raised there aborts the process (pybind11) or comes back
# as another error ("... returned a result with an exception set", blamed on the file being read)
_NATIVE_CALLERS = ("torch", "h5py")


def _called_from_native_code(frame) -> bool:
    """Whether ``frame`` may be Python code that native code called, where an exception cannot
    travel back safely: anything while _NATIVE_CALLERS' code is on the stack (their imports too:
    ``import torch`` registers its operators through pybind11), a finaliser (weakref callbacks,
    ``__del__``), or this module's own handling of an earlier signal that was held back."""
    if frame is not None and (frame.f_code.co_name == "__del__"
                              or os.path.basename(frame.f_code.co_filename) in ("weakref.py", "_weakrefset.py")):
        return True
    folders = tuple(os.path.dirname(module.__file__) + os.sep for module in map(sys.modules.get, _NATIVE_CALLERS)
                    if getattr(module, "__file__", None))  # while a package imports, it is there already
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(folders) or frame.f_code in _HOLDING_BACK:
            return True
        frame = frame.f_back
    return False


def _deliver_later(signum: int) -> None:
    token = [signum]
    _deferred[:] = [waiting for waiting in _deferred if waiting[0]] + [token]  # those not sent nor revoked
    if _installed[0]:  # read once the token is listed: restore either revokes it or it is dropped here
        resend_later(token)
    else:
        token[0] = 0  # restore has run: the signal is dropped


def start_resender() -> None:
    """Start the thread that sends held-back signals again (``resend_later``) unless it runs: from
    ordinary code, never from a signal handler."""
    if _resender[0] is None or not _resender[0].is_alive():  # a forked child has none
        _resender[0] = threading.Thread(target=_resend, name="deepuad-signals", daemon=True)
        _resender[0].start()


def resend_later(token: list) -> None:
    """Have the thread of ``start_resender`` send the signal ``token[0]`` to this process again
    10 ms from now, unless the token is revoked first (``revoke``); ``token[0]`` is 0 once it is
    sent or revoked.

    Safe inside a signal handler: it only puts a request in a queue (a SimpleQueue's put is
    reentrant). A handler that starts a thread instead (a threading.Timer) waits for that thread
    to start while the main thread holds whatever the code it interrupted held, such as h5py's
    global lock; the new thread may run the garbage collector first (Python 3.11 collects in the
    thread that allocates), and a finaliser it runs may need that lock (h5py frees each of its
    objects under it): each thread then waits for the other for ever. A thread started while the
    interpreter exits never starts at all, and the handler would wait for it for ever too."""
    _requests.put((time.monotonic() + 0.01, token))


def revoke(tokens: list) -> list:
    """Stop the sending of ``tokens`` (``resend_later``); the signals of those not sent yet."""
    with _sending:  # one sent already is on its way to the handler
        return _revoke(tokens)


def _revoke(tokens: list) -> list:
    waiting = [token[0] for token in tokens if token[0]]
    for token in tokens:
        token[0] = 0
    return waiting


def _resend() -> None:
    while True:
        when, token = _requests.get()
        time.sleep(max(0.0, when - time.monotonic()))
        with _sending:  # nothing in here allocates: no collection (see resend_later) runs while it is held
            signum = token[0]
            token[0] = 0
            if signum:
                try:
                    os.kill(os.getpid(), signum)
                except OSError:
                    pass


def _unraisable(unraisable) -> None:
    """An interrupt raised where Python drops exceptions (a callback the collector ran) is not
    lost: the signal is sent again, to land where it ends the command."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _hold_until[0] = -math.inf  # it ended nothing
        _deliver_later(signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT)
        return
    _previous_unraisablehook[0](unraisable)


# a signal landing while these run would be raised into what they hold a signal back from, into
# the end of a command that has finished (restore), or before the command can report it (install)
_HOLDING_BACK = frozenset({_raise_where_safe.__code__, _unraisable.__code__, restore.__code__, install.__code__})
