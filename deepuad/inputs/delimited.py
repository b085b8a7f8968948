"""CSV/TSV tables read as pandas DataFrames in chunks, for ``TabularEncoder`` (``tabular``) to encode.

A file someone sends is read without trusting it: gzip, bzip2, xz and one-file zip archives are
recognised by their first bytes (a zip by its name), and every parse problem, a corrupt
compressed stream, a NUL byte, an overlong line or a header naming a column twice is an
InputError naming the file.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import pandas as pd

from deepuad.errors import InputError, ParamError
from deepuad.inputs.arrays import _starts_with, HDF5_SIGNATURE

NA_VALUES = ["", "nan", "NaN", "NAN", "-nan", "-NaN"]

# Compressed tables, recognised by their first bytes (not their names); .zip by its name, as
# pandas does, holding exactly one file.
DECOMPRESSORS = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
# The longest line deepuad reads. pandas holds a whole line (and then each cell as a Python
# string) in memory, so a small .csv.gz holding one huge cell would take gigabytes and write its
# text into the artifact as a category name.
MAX_LINE_BYTES = 16 << 20


def _open_decompressed(path: Path):
    """``path`` opened for reading bytes, decompressed if it is gzip, bzip2, xz or a one-file zip."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    for magic, opener in DECOMPRESSORS:
        if head.startswith(magic):
            return opener(path, "rb")
    if head.startswith(b"PK\x03\x04") and path.suffix.lower() == ".zip":
        archive = zipfile.ZipFile(path)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            raise InputError(f"is a zip archive of {len(members)} files; expected exactly one table", path)
        return archive.open(members[0])
    return open(path, "rb")


class _GuardedStream(io.RawIOBase):
    """The table's bytes as pandas reads them, checked on the way: a corrupt compressed stream
    is an InputError (a truncated .gz raises EOFError, which click would report as "interrupted"
    with exit 130), and so are a line longer than MAX_LINE_BYTES and, in 8-bit and UTF-8 text,
    a NUL byte (HDF5 cannot store it in a category name)."""

    def __init__(self, raw, path: Path, allow_nul: bool):
        self.raw, self.path, self.allow_nul = raw, path, allow_nul
        self.offset = 0
        self.line_bytes = 0  # bytes since the last newline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.raw.read(len(buffer))
        except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, OSError) as error:
            raise InputError(f"is a corrupt or truncated compressed file: {error}", self.path) from None
        nul = -1 if self.allow_nul else data.find(b"\0")
        if nul >= 0:
            raise InputError(f"contains a NUL byte at byte {self.offset + nul} (a binary file, or text in "
                             "another encoding? see `text_encoding`)", self.path)
        last_newline = data.rfind(b"\n")
        self.line_bytes = self.line_bytes + len(data) if last_newline < 0 else len(data) - last_newline - 1
        if self.line_bytes > MAX_LINE_BYTES:
            raise InputError(f"has a line longer than {MAX_LINE_BYTES >> 20} MiB near byte {self.offset} (a broken quote, "
                             "or not a table?)", self.path)
        buffer[: len(data)] = data
        self.offset += len(data)
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()
        super().close()


def _check_header(path: Path, sep: str, encoding: str) -> None:
    """InputError for a header that names a column twice: pandas renames the second 'label' to
    'label.1', which would then be encoded as a feature and leak the ground truth."""
    with _open_decompressed(path) as raw:
        line = io.BufferedReader(_GuardedStream(raw, path, allow_nul=True)).readline(MAX_LINE_BYTES)
    try:
        names = next(csv.reader([line.decode(encoding).lstrip("\ufeff")], delimiter=sep, skipinitialspace=True))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return  # pandas reports what is wrong with it
    seen: dict[str, int] = {}
    for position, name in enumerate(names, 1):
        name = name.strip()
        if name in seen and name:
            raise InputError(f"names column {name!r} twice (columns {seen[name]} and {position}); rename one, since pandas "
                             "would keep the second as a separate feature (a duplicated label leaks into the features)", path)
        seen[name] = position


def _separator(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    return "\t" if ".tsv" in suffixes or ".tab" in suffixes else ","


def read_table_chunks(path: str | Path, chunk_rows: int, encoding: str, text_columns=()) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows, indexed by data row number (from 0); every
    parse problem becomes an InputError. ``text_columns`` (the id columns) are read as the text
    written, so that an id "0017" stays "0017"."""
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ParamError("text_encoding", f"{encoding!r} is not a text encoding Python knows (e.g. utf-8, latin-1, cp1252)") from None
    if _starts_with(path, HDF5_SIGNATURE):  # else "not valid utf-8 text (byte 0)", which misleads
        raise InputError("is an HDF5 file, not a CSV/TSV table (extract reads raw data; artifacts go to the later stages)", path)
    allow_nul = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    try:
        _check_header(path, _separator(path), encoding)
        source = io.BufferedReader(_GuardedStream(_open_decompressed(path), path, allow_nul), buffer_size=1 << 20)
        reader = pd.read_csv(
            source, sep=_separator(path), chunksize=chunk_rows, encoding=encoding, compression=None,
            skipinitialspace=True, low_memory=False, keep_default_na=False, dtype={c: str for c in text_columns} or None,
            # "nan" is how Python and NumPy print a missing number: read as missing, so that a
            # numeric column holding it is refused (DataError) instead of silently becoming a
            # one-hot text column. Gaps are what --missing decides about.
            na_values=NA_VALUES,
        )
        with reader, source:
            yield from reader
    except UnicodeDecodeError as error:
        raise InputError(f"is not valid {encoding} text (byte {error.start}); pass `text_encoding`", path) from None
    except pd.errors.EmptyDataError:
        raise InputError("is empty (no header, no rows)", path) from None
    except pd.errors.ParserError as error:
        raise InputError(f"malformed table: {str(error).strip().splitlines()[-1]}", path) from None
    except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as error:
        raise InputError(f"is a corrupt or truncated compressed file: {error}", path) from None
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read as a table: {error}", path) from None
