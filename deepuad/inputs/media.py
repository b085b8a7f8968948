"""What the media readers (``mnist``, ``images``, ``torchscript``, ``video``) share: the error they
raise for a bad input file or folder, the first-line cut of a library's message, and gzip's magic bytes.

Every problem with an input raises ``MediaError(path, problem)``; bad parameters raise
``ValueError``. Nothing in these readers prints, exits or writes files: the caller does that.
Corrupt files fail fast: sizes declared in headers are checked against what the file can
actually hold before anything of that size is allocated.
"""

from __future__ import annotations

from deepuad.errors import InputError

__all__ = ["MediaError", "first_line", "is_gzip", "GZIP_MAGIC"]


class MediaError(InputError):
    """A problem with one input file or folder: ``str(error) == f"{path}: {problem}"``.

    An ``InputError``, so the command line reports it in one line with exit code 3."""

    def __init__(self, path, problem: str):
        super().__init__(problem, path)
        self.args = (path, problem)  # so the exception pickles (e.g. across worker processes)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def first_line(error: BaseException) -> str:
    """A library's error message cut to its first line (torch's run to pages)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC

