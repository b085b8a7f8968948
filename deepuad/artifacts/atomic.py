"""Writing a file so that a crash never leaves half of it under the real name.

Every output (HDF5 artifacts through ``envelope.write_artifact``, plots, metrics.json through
``write_file_atomically``) is checked first (``check_output_path``), written under a temporary
name in the target folder, fsynced and renamed into place. One deepuad writer per folder at a
time (``_folder_lock``). ``_SafeFile`` is the file as HDF5 sees it: it survives a failed write
(disk full) and holds Ctrl-C while HDF5's own code runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

from deepuad.errors import OutputError
from deepuad.signals import placing_output, raise_held_back, resend_later, revoke, start_resender


def check_output_path(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """The output path, or OutputError if it cannot be written (before any work is done).

    An output is written under a temporary name and renamed into place, so whatever the name
    held is replaced: it must be a new name or a regular file, and none of the command's
    ``inputs`` (the same file under any name, or a file inside an input folder). Otherwise
    ``deepuad extract same.csv -o same.csv`` would replace the CSV, and ``-o /dev/null`` the
    device itself."""
    path = Path(path)
    try:
        info = os.stat(path)  # follows a symbolic link: what it points to is what gets replaced
    except (FileNotFoundError, NotADirectoryError):
        info = None
    except OSError as error:  # a name too long, a loop of links, ...
        raise OutputError(f"cannot be used as an output: {error.strerror or error}", path) from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError("is a directory, expected a file name", path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError("is not a regular file (a device, FIFO or socket); deepuad writes a new file and renames it "
                          "into place, which would replace it: choose a file name", path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"folder {folder} is not writable", path)
    if info is not None and not os.access(path, os.W_OK):
        raise OutputError("exists and is not writable", path)
    for source in inputs:
        if source is not None and is_same_or_inside(path, source):
            raise OutputError(f"is also an input of this command ({source}); writing it would destroy that input: "
                              "choose another output name", path)
    return path


def is_same_or_inside(path: str | Path, source: str | Path) -> bool:
    """Whether ``path`` is the file ``source`` (under any name: a link counts) or lies inside the
    folder ``source``."""
    path, source = Path(path), Path(source)
    try:  # any of these can raise for a name the OS refuses (too long): then it names nothing that exists
        if path.exists() and source.exists() and os.path.samefile(path, source):
            return True
        resolved, resolved_source = path.resolve(), source.resolve()
        return resolved == resolved_source or (source.is_dir() and resolved_source in resolved.parents)
    except (OSError, RuntimeError):
        return False


WRITER_WAIT_SECONDS = 600


@contextlib.contextmanager
def _folder_lock(path: Path):
    """One deepuad writer per folder at a time: a second one waits (up to WRITER_WAIT_SECONDS,
    then OutputError) instead of racing, so two jobs writing the same -o finish one after the
    other. flock on the folder itself leaves no lock file behind; where flock is unavailable
    (Windows, some network filesystems) the atomic rename alone still prevents mixed files."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder_fd = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
    try:
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(folder_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(f"another deepuad process has been writing in this folder for {WRITER_WAIT_SECONDS} s", path) from None
                time.sleep(0.1)
            except OSError:  # flock not supported here: rely on the atomic rename
                break
        yield
    finally:
        os.close(folder_fd)


def _temporary_name(path: Path) -> Path:
    # a name near the file system's 255-byte limit must still leave room for the temporary suffix
    short_name = path.name.encode()[:200].decode(errors="ignore")
    return path.with_name(f".{short_name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_file_atomically(path: str | Path, write, inputs: Iterable[str | Path | None] = ()) -> Path:
    """A non-HDF5 output (a plot, metrics.json) written like an artifact: checked by
    check_output_path, written by ``write(binary file)`` under a temporary name, fsynced and
    renamed into place; on any error the temporary file is removed and the old file kept."""
    path = check_output_path(path, inputs)
    tmp = _temporary_name(path)
    try:
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        raise_held_back()  # a Ctrl-C or SIGTERM held back meanwhile: the old file stays
        placing_output()
        os.replace(tmp, path)
    except OSError as error:
        _remove_quietly(tmp)
        raise _output_error(error, path) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


class _SafeFile:
    """The temporary file as HDF5 sees it (h5py's ``fileobj`` driver).

    HDF5 does not survive a failed write: once a write has failed (disk full, file size limit,
    I/O error) the next flush or close of the file segfaults (h5py issues 914 and 2160), so a
    full disk would kill the process instead of ending it with a message. Here a failed write is
    recorded and reported to HDF5 as done; ``check()`` raises the recorded error, and
    write_artifact removes the file, once HDF5 has closed it cleanly. Writes are looped until
    complete: the driver ignores short writes, which would otherwise be silent corruption. After
    ``discard()`` every method is a harmless no-op, for an HDF5 that closes the file late."""

    def __init__(self, path: Path):
        self.raw = open(path, "xb+", buffering=0)  # x: a name clash with another writer fails, never shares
        self.error: OSError | None = None
        self.discarded = False

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def discard(self) -> None:
        self.discarded = True
        with contextlib.suppress(OSError):
            self.raw.close()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and not self.discarded and done < len(view):
            try:
                written = self.raw.write(view[done:])
            except OSError as error:
                self.error = error
                break
            if not written:
                self.error = OSError(errno.EIO, "short write")
            done += written or 0
        return len(view)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if not self.discarded:
            try:
                done = self.raw.readinto(view) or 0
            except OSError as error:
                self.error = self.error or error
        if done < len(view):  # past the end, as HDF5's own driver does: zeros
            view[done:] = bytes(len(view) - done)
        return len(view)

    def read(self, size: int = -1) -> bytes:  # h5py requires it; it reads with readinto
        return b"" if self.discarded else self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return offset if self.discarded else self.raw.seek(offset, whence)

    def tell(self) -> int:
        return 0 if self.discarded else self.raw.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.error is None and not self.discarded:
            try:
                self.raw.truncate(size)
            except OSError as error:
                self.error = error
        return size or 0

    def flush(self) -> None:
        pass  # unbuffered; write_artifact fsyncs before the rename


_DRIVER_CODE = frozenset(f.__code__ for f in vars(_SafeFile).values() if callable(f) and hasattr(f, "__code__"))


@contextlib.contextmanager
def _interrupts_held_in_driver() -> Iterator[None]:
    """Hold back a Ctrl-C (or a SIGTERM, which the CLI turns into the same KeyboardInterrupt)
    while HDF5 is inside one of _SafeFile's methods and re-deliver it a moment later: a
    KeyboardInterrupt raised there fails HDF5's write, and HDF5 then segfaults on close (the
    same bug as a full disk). Everywhere else the signal acts at once, as usual.

    A held-back signal whose re-delivery has not happened yet when HDF5 closes the file is
    raised here, before the caller renames the file into place: otherwise it would arrive
    after the rename (or during interpreter shutdown, where Python only prints it), and the
    command would end with exit 0 and a replaced output although it was interrupted."""
    signums = [s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None]
    previous = {s: signal.getsignal(s) for s in signums}
    held = [s for s in signums if callable(previous[s])]  # SIG_IGN/SIG_DFL raise nothing in Python
    if threading.current_thread() is not threading.main_thread() or not held:
        yield  # signals only reach the main thread
        return
    pending: list[list] = []  # the tokens of the signals held back (resend_later)

    def handler(signum, frame):
        if _inside_driver(frame):
            token = [signum]
            pending.append(token)
            resend_later(token)  # again once HDF5 has returned (a handler must not start a thread)
            return
        pending.clear()  # delivered now
        previous[signum](signum, frame)

    start_resender()
    for signum in held:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        late = revoke(pending)  # first: one sent again after the handlers below are back could reach a default handler
        for signum in held:
            signal.signal(signum, previous[signum])
    if late:
        raise KeyboardInterrupt


def _inside_driver(frame) -> bool:
    """Whether HDF5 is in one of _SafeFile's methods: anywhere on the stack, so that a second
    Ctrl-C landing in this handler is held back too."""
    while frame is not None:
        if frame.f_code in _DRIVER_CODE:
            return True
        frame = frame.f_back
    return False


def _output_error(error: OSError, path: Path) -> OutputError:
    if error.errno == errno.ENOSPC or "No space" in str(error):
        return OutputError("no space left on the device; nothing was written", path)
    if error.errno == errno.EFBIG:
        return OutputError("file too large for the file system or the file size limit; nothing was written", path)
    if error.errno == errno.EDQUOT:
        return OutputError("disk quota exceeded; nothing was written", path)
    return OutputError(f"cannot write: {error.strerror or error}", path)


def _discard(handle: "_SafeFile | None", tmp: Path) -> None:
    if handle is not None:
        handle.discard()
    _remove_quietly(tmp)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where folders cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
