"""Parquet and Arrow (IPC file/Feather v2, IPC stream) tables for ``extract``, through pyarrow.

``read_table_chunks`` yields the same pandas DataFrames that ``tabular.read_table_chunks`` yields
for a CSV, so one ``TabularEncoder`` encodes both and ``extract --like`` works across formats:
the same data as CSV and as Parquet gives the same features file.

* Bounded memory: a Parquet file is read one row group at a time (``iter_batches``), an Arrow
  file one record batch at a time, and each is cut into ``chunk_rows`` pieces; columns given to
  ``--drop`` are never read.
* Types come from the schema: numbers (and booleans, decimals) are numeric; strings and
  dictionary columns are categorical; dates, times, timestamps and durations are refused with
  one line naming the column (``--drop`` it, ``--id-column`` it, or store it as a number);
  nested and binary columns likewise. An id column (``text_columns``) may also be a date or
  time, and is read as text.
* A file someone sends: a row group that declares more than MAX_ROW_GROUP_BYTES once decoded
  is refused from the footer, before it is read, and every pyarrow error is an InputError
  naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from deepuad.errors import DataError, InputError, UsageError

PARQUET_MAGIC = b"PAR1"
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"  # the continuation marker of an IPC stream's first message
ARROW_SUFFIXES = (".arrow", ".arrows", ".feather", ".ipc")
MAX_ROW_GROUP_BYTES = 4 << 30  # decoded size of one row group: what reading it holds in memory


def table_format(path: str | Path) -> str | None:
    """"parquet", "arrow" (IPC file / Feather v2), "arrow-stream", or None (a text table)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None  # the text reader reports it
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(ARROW_FILE_MAGIC):
        return "arrow"
    if head.startswith(ARROW_STREAM_MAGIC) and path.suffix.lower() in ARROW_SUFFIXES:
        return "arrow-stream"
    return None


def read_any_table(path, chunk_rows: int = 100_000, encoding: str = "utf-8", drop=(), text_columns=()) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows from a CSV/TSV or a Parquet/Arrow file, indexed
    by data row number (from 0); ``text_columns`` (id columns) as text."""
    from deepuad.inputs.tabular import read_table_chunks

    kind = table_format(path)
    if kind is None:
        return read_table_chunks(path, chunk_rows, encoding, text_columns)
    return read_arrow_chunks(path, chunk_rows, drop, kind, text_columns)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a dependency: only a broken install lacks it
        raise UsageError("reading Parquet/Arrow needs pyarrow: pip install pyarrow") from None
    return pa, pq


def check_schema(schema, path, drop=(), text_columns=()) -> list[str]:
    """The columns to read (all but ``drop``); DataError for a column whose type is no feature
    (an id column, in ``text_columns``, may also be a date or time)."""
    pa, _ = _pyarrow()
    types = pa.types
    names = list(schema.names)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"names column {name!r} twice; rename one", path)
        seen.add(name)
    keep = [name for name in names if name not in drop]
    for name in keep:
        kind = schema.field(name).type
        value = kind.value_type if types.is_dictionary(kind) else kind
        if types.is_temporal(value) and name in text_columns:
            continue
        if types.is_temporal(value):
            raise DataError(f"column {name!r} is a {value} (dates and times are not features): --drop {name}, --id-column "
                            f"{name} to carry it beside the scores, or store it as a number (e.g. seconds since an event)", path)
        if not (types.is_integer(value) or types.is_floating(value) or types.is_boolean(value) or types.is_decimal(value)
                or types.is_string(value) or types.is_large_string(value) or types.is_null(value)):
            raise DataError(f"column {name!r} has type {value}, which deepuad cannot encode (numbers and text only): "
                            f"--drop {name}", path)
    return keep


def _frame(batch, offset: int, dropped=(), text_columns=()) -> pd.DataFrame:
    """A record batch as the DataFrame the CSV reader would give: text columns as strings
    (missing text as NaN, as the CSV reader gives an empty cell), numbers as float/int (missing
    numbers as NaN: a gap), ``text_columns`` as text (dates and times as pandas writes them), the
    index the data row number."""
    pa, _ = _pyarrow()
    columns = {}
    for name, column in zip(batch.schema.names, batch.columns):
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.dictionary_decode()
            kind = column.type
        if name in text_columns and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            values = column.to_pandas() if pa.types.is_temporal(kind) else column.cast(pa.string()).to_pandas()
            columns[name] = pd.Series([None if pd.isna(v) else str(v) for v in values], dtype=object)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = column.to_numpy(zero_copy_only=False).astype(object)
            values[pd.isna(values)] = np.nan
            columns[name] = pd.Series(values)  # the text dtype pandas' CSV reader gives too (object, or str in pandas 3)
        elif pa.types.is_decimal(kind):
            columns[name] = pd.Series(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        else:
            columns[name] = column.to_pandas()
    for name in dropped:  # never read; present (empty) so that the encoder's --drop check finds them, as in a CSV
        columns[name] = pd.Series(np.full(batch.num_rows, np.nan))
    frame = pd.DataFrame(columns)
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame


def _batches(path, kind: str, columns: list[str], chunk_rows: int):
    pa, pq = _pyarrow()
    if kind == "parquet":
        reader = pq.ParquetFile(path)
        metadata = reader.metadata
        for group in range(metadata.num_row_groups):
            size = metadata.row_group(group).total_byte_size
            if size > MAX_ROW_GROUP_BYTES:
                raise InputError(f"row group {group} declares {size / 2**30:.1f} GiB decoded (at most "
                                 f"{MAX_ROW_GROUP_BYTES >> 30} GiB are read at once); rewrite it with smaller row groups", path)
        yield reader.schema_arrow
        yield from reader.iter_batches(batch_size=chunk_rows, columns=columns)
        return
    source = pa.memory_map(str(path), "r")
    reader = pa.ipc.open_file(source) if kind == "arrow" else pa.ipc.open_stream(source)
    yield reader.schema
    batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if kind == "arrow" else reader
    for batch in batches:
        batch = batch.select(columns)
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def read_arrow_chunks(path, chunk_rows: int = 100_000, drop=(), kind: str | None = None, text_columns=()) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows from a Parquet or Arrow file (see the module doc)."""
    pa, _ = _pyarrow()
    path = Path(path)
    kind = kind or table_format(path) or "parquet"
    offset = 0
    try:
        schema = None
        batches = None
        # the schema comes first, so that the columns are checked before any data is read
        batches = _batches(path, kind, [], chunk_rows)
        schema = next(batches)
        batches.close()
        keep = check_schema(schema, path, drop, text_columns)
        batches = _batches(path, kind, keep, chunk_rows)
        next(batches)
        empty = True
        for batch in batches:
            if batch.num_rows == 0:
                continue
            empty = False
            frame = _frame(batch, offset, [c for c in drop if c in schema.names], text_columns)
            offset += len(frame)
            yield frame
        if empty:
            yield pd.DataFrame({name: pd.Series([], dtype=object) for name in keep})
    except (pa.ArrowException, OSError, ValueError, EOFError) as error:
        raise InputError(f"cannot read as {'Parquet' if kind == 'parquet' else 'Arrow'}: {error}", path) from None
