"""Parquet and Arrow (IPC file/Feather v2, IPC stream) tables for ``extract``, through pyarrow.

``read_table_chunks`` yields the same pandas DataFrames that ``delimited.read_table_chunks`` yields
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

from deepuad.errors import DataError, InputError, RequestError

PARQUET_MAGIC = b"PAR1"
ARROW_FILE_MAGIC = b"ARROW1"
ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"  # the continuation marker of an IPC stream's first message
ARROW_SUFFIXES = (".arrow", ".arrows", ".feather", ".ipc")
MAX_ROW_GROUP_BYTES = 4 << 30  # decoded size of one row group: what reading it holds in memory
# a column chunk may inflate beyond MAX_INFLATED_BYTES only by this ratio: run-length and
# dictionary encodings already shrink repetitive columns, so more is a compressed bomb
MAX_INFLATED_BYTES, MAX_INFLATION = 64 << 20, 200
MAX_BATCH_TEXT_BYTES = 256 << 20  # text decoded at once: one chunk of rows


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


def read_any_table(path, chunk_rows: int, encoding: str, drop=(), text_columns=()) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows from a CSV/TSV or a Parquet/Arrow file, indexed
    by data row number (from 0); ``text_columns`` (id columns) as text."""
    from deepuad.inputs.delimited import read_table_chunks

    kind = table_format(path)
    if kind is None:
        return read_table_chunks(path, chunk_rows, encoding, text_columns)
    return read_arrow_chunks(path, chunk_rows, drop, kind, text_columns)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # a dependency: only a broken install lacks it
        raise RequestError("reading Parquet/Arrow needs pyarrow: pip install pyarrow") from None
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
            raise DataError(f"column {name!r} is a {value} (dates and times are not features): `drop` {name}, `id_columns` "
                            f"{name} to carry it beside the scores, or store it as a number (e.g. seconds since an event)", path)
        if not (types.is_integer(value) or types.is_floating(value) or types.is_boolean(value) or types.is_decimal(value)
                or types.is_string(value) or types.is_large_string(value) or types.is_null(value)):
            raise DataError(f"column {name!r} has type {value}, which deepuad cannot encode (numbers and text only): "
                            f"`drop` {name}", path)
    return keep


def _frame(batch, offset: int, dropped=(), text_columns=(), path=None) -> pd.DataFrame:
    """A record batch as the DataFrame the CSV reader would give: text columns as strings
    (missing text as NaN, as the CSV reader gives an empty cell), numbers as float/int (missing
    numbers as NaN: a gap), ``text_columns`` as text (dates and times as pandas writes them), the
    index the data row number."""
    pa, _ = _pyarrow()
    _check_text_size(batch, offset, path)
    columns = {}
    for name, column in zip(batch.schema.names, batch.columns):
        kind = column.type
        if pa.types.is_dictionary(kind) and _is_text(kind.value_type):
            columns[name] = pd.Series(_dictionary_text(column))
            continue
        if pa.types.is_dictionary(kind):  # numbers: 8 bytes a row decoded
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
    for name in dropped:  # never read; present (empty) so that the encoder's check of drop finds them, as in a CSV
        columns[name] = pd.Series(np.full(batch.num_rows, np.nan))
    frame = pd.DataFrame(columns)
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame


def _is_text(kind) -> bool:
    pa, _ = _pyarrow()
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _dictionary_text(column) -> np.ndarray:
    """A dictionary-encoded text column as the object array the CSV reader gives, without
    decoding it: each row refers to its dictionary entry's one Python string (8 bytes a row),
    so a small dictionary repeated over millions of rows (a "dictionary bomb") costs no more
    than its indices. Missing values are NaN."""
    dictionary = column.dictionary.to_numpy(zero_copy_only=False).astype(object)
    indices = column.indices
    missing = indices.is_null().to_numpy(zero_copy_only=False)
    values = dictionary[indices.fill_null(0).to_numpy(zero_copy_only=False)] if len(dictionary) else np.full(len(column), np.nan, object)
    values[missing] = np.nan
    return values


def _check_text_size(batch, offset: int, path) -> None:
    """Before any text of ``batch`` is decoded: InputError if a dictionary holds a value longer
    than a category may be (tabular.MAX_CATEGORY_CHARS), or if its text columns would decode to
    more than MAX_BATCH_TEXT_BYTES. A dictionary of one long value repeated over every row is a
    few kilobytes stored and gigabytes decoded."""
    import pyarrow.compute as pc
    from deepuad.inputs.tabular import MAX_CATEGORY_CHARS

    pa, _ = _pyarrow()
    total = 0
    for name, column in zip(batch.schema.names, batch.columns):
        if pa.types.is_dictionary(column.type) and _is_text(column.type.value_type):
            lengths = pc.utf8_length(column.dictionary)
            longest = pc.max(lengths).as_py() or 0
            if longest > MAX_CATEGORY_CHARS:
                raise DataError(f"column {name!r} holds a {longest:,}-character value, too long for a category (free text, "
                                "or a broken quote?); `drop` it", path)
            total += pc.sum(pc.take(pc.binary_length(column.dictionary), column.indices)).as_py() or 0
        elif _is_text(column.type):
            total += column.nbytes
    if total > MAX_BATCH_TEXT_BYTES:
        raise InputError(f"rows {offset + 1:,} to {offset + batch.num_rows:,} hold {total / 2**20:,.0f} MiB of text once decoded "
                         f"(at most {MAX_BATCH_TEXT_BYTES >> 20} MiB at once); lower `chunk_rows` if that is real data", path)


def _check_row_groups(metadata, path) -> None:
    """InputError, from the footer and before any page is read, for a row group that declares
    more than MAX_ROW_GROUP_BYTES decoded, or a column chunk that inflates more than
    MAX_INFLATION times beyond MAX_INFLATED_BYTES (a compressed run of one value)."""
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        size = row_group.total_byte_size
        if size > MAX_ROW_GROUP_BYTES:
            raise InputError(f"row group {group} declares {size / 2**30:.1f} GiB decoded (at most "
                             f"{MAX_ROW_GROUP_BYTES >> 30} GiB are read at once); rewrite it with smaller row groups", path)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            inflated, stored = chunk.total_uncompressed_size, max(chunk.total_compressed_size, 1)
            if inflated > MAX_INFLATED_BYTES and inflated > MAX_INFLATION * stored:
                raise InputError(f"column {chunk.path_in_schema!r} of row group {group} declares {inflated / 2**20:,.0f} MiB "
                                 f"from {stored:,} stored bytes (more than {MAX_INFLATION}:1; crafted?)", path)


def _batches(path, kind: str, columns: list[str], chunk_rows: int):
    pa, pq = _pyarrow()
    if kind == "parquet":
        reader = pq.ParquetFile(path)
        _check_row_groups(reader.metadata, path)
        schema = reader.schema_arrow
        yield schema
        # text read as dictionaries where stored so: _frame then never decodes them (_dictionary_text)
        text = [name for name in columns if _is_text(schema.field(name).type)]
        if text:
            reader = pq.ParquetFile(path, read_dictionary=text)
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


def read_arrow_chunks(path, chunk_rows: int, drop=(), kind: str | None = None, text_columns=()) -> Iterator[pd.DataFrame]:
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
            frame = _frame(batch, offset, [c for c in drop if c in schema.names], text_columns, path)
            offset += len(frame)
            yield frame
        if empty:
            yield pd.DataFrame({name: pd.Series([], dtype=object) for name in keep})
    except (pa.ArrowException, OSError, ValueError, EOFError) as error:
        raise InputError(f"cannot read as {'Parquet' if kind == 'parquet' else 'Arrow'}: {error}", path) from None
