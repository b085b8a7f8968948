"""Rows as CSV or JSON text, built a column at a time with NumPy: the same text that the csv and
json modules write for the same rows, several times faster (``top`` may list millions of rows;
written a cell at a time by Python, their numbers took most of its time).

A chunk of rows is a list of columns, each a NumPy array of numbers (int64, float64, or
``decoding.Plain``: decoded numbers, whole ones written as ints), a ``decoding.Coded`` column
of few distinct values (categories, a per-row dataset's text: each value written once), or a
list of Python values (explanations, id columns). Every cell becomes the places of a byte
matrix, padded with PAD (a byte that UTF-8 never uses); the matrices of the row's cells, with
the separators between them, are put one after the other, and the text is what is left once the
padding is dropped.

Numbers are written as ``repr`` writes them (and so csv and json): digits and a point,
``e-05`` beyond 1e-4 and 1e16. A float is read as its shortest decimal digits, which takes
NumPy for a float of at most 9 significant digits (all that top writes: scores keep 9, decoded
values 7); Python writes the others.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

import numpy as np

from deepuad.inputs.decoding import Coded, Plain, python_values

PAD = 0xFF  # never a byte of UTF-8 text
DIGITS = 9  # the most significant digits of a float written here
_THOUSANDS = np.frombuffer(b"".join(f"{i:03d}".encode() + b"\0" for i in range(1000)), dtype=np.uint32)  # 0 -> "000"
_NINES = np.array([10**k for k in range(10)], dtype=np.int64)
_EXACT = np.array([float(10**k) for k in range(23)])  # the powers of ten a float64 holds exactly
_ZERO = ord("0")
_SPECIAL = re.compile('[,"\n\r]').search  # a CSV cell holding none of these is written as it is


# --------------------------------------------------------------------------- cells
# A column's cells are a (places, rows) matrix: each place a row of bytes, contiguous in memory.
def _nine_digits(values: np.ndarray) -> np.ndarray:
    """(9, rows): the digits of non-negative integers below 10**9, zeros in front (three
    look-ups of three digits: int32 division is fast)."""
    values = values.astype(np.int32)
    millions, thousands = values // 1_000_000, values // 1000
    groups = [millions, thousands - millions * 1000, values - thousands * 1000]
    return np.vstack([np.take(_THOUSANDS, group).view(np.uint8).reshape(-1, 4).T[:3] for group in groups])


def _chars(rows: int, text: str, where: np.ndarray | None = None) -> np.ndarray:
    """``text`` in every row (or in the rows ``where`` is set, PAD in the others)."""
    out = np.repeat(np.frombuffer(text.encode(), dtype=np.uint8)[:, None], rows, axis=1)
    if where is not None:
        out[:, ~where] = PAD
    return out


def _merged(rows: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """One matrix of cells from (which rows, their cells) parts."""
    parts = [(where, cells) for where, cells in parts if cells.shape[1]]
    if len(parts) == 1 and parts[0][1].shape[1] == rows:  # one part holds every row, in order
        return parts[0][1]
    out = np.full((max((cells.shape[0] for _, cells in parts), default=0), rows), PAD, dtype=np.uint8)
    for where, cells in parts:
        out[: cells.shape[0], where] = cells
    return out


def _integer_cells(values: np.ndarray) -> np.ndarray:
    """Integers (any NumPy integer type) as str writes them."""
    values = np.asarray(values)
    negative = values < 0
    if len(values) and values.min() >= 0 and values.max() < 10**9:  # most columns: nine digits at most
        magnitude = values
    elif values.dtype.kind == "i":  # the magnitude, for the most negative int64 too
        magnitude = np.where(negative, (-(values + 1)).astype(np.uint64) + np.uint64(1), values.astype(np.uint64))
    else:
        magnitude = values.astype(np.uint64)
    billion = np.uint64(10**9)
    groups = [magnitude]
    if magnitude.dtype == np.uint64 and (magnitude >= billion).any():  # nine digits at a time
        groups = [magnitude // billion**np.uint64(2), (magnitude // billion) % billion, magnitude % billion]
    digits = np.vstack([_nine_digits(group) for group in groups])
    width = digits.shape[0]
    first = np.where(magnitude == 0, width - 1, np.argmax(digits != _ZERO, axis=0))  # the first digit that is not 0
    digits[np.arange(width)[:, None] < first] = PAD
    sign = [_chars(len(values), "-", negative)] if negative.any() else []
    return np.vstack([*sign, digits[int(first.min(initial=width - 1)):]])


def _decimal_cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``repr`` of non-zero finite floats of at most DIGITS significant digits: (which of them
    are such, their cells). From the DIGITS digits of each, and where its decimal point goes,
    each place of the text is shown or not: 0.000123, 123.45, 1200.0, 1.5e-05, 1e+16."""
    negative, size = np.signbit(values), np.abs(values)
    exponent = np.floor(np.log10(size)).astype(np.int64)  # of the first digit
    shift = (DIGITS - 1) - exponent
    fits = np.abs(shift) < len(_EXACT)
    shift = np.where(fits, shift, 0)
    power = _EXACT[np.abs(shift)]
    digits_as_int = np.rint(np.where(shift >= 0, size * power, size / power))
    fits &= np.where(shift >= 0, digits_as_int / power, digits_as_int * power) == size  # no digit beyond them
    fits &= (digits_as_int >= _NINES[DIGITS - 1]) & (digits_as_int < _NINES[DIGITS])  # the exponent was right
    digits = _nine_digits(np.where(fits, digits_as_int, 0))
    count = (DIGITS - np.argmax(digits[::-1] != _ZERO, axis=0)).astype(np.int16)  # significant digits
    point = np.clip(exponent + 1, -400, 400).astype(np.int16)  # digits before the decimal point (<= 0: zeros after it)
    exponential = (point <= -4) | (point > 16)
    fixed = ~exponential

    places = []

    def place(char, shown):  # a place of the text: ``char`` (a letter, or a row of them) where shown
        if shown.any():  # a place no row shows is left out
            places.append(np.where(shown, np.uint8(ord(char)) if isinstance(char, str) else char, np.uint8(PAD)))

    place("-", negative)
    place("0", fixed & (point <= 0))
    place(".", fixed & (point <= 0))
    for zero in range(3):  # 0.000123
        place("0", fixed & (zero < -point))
    for k in range(DIGITS):
        place(digits[k], (k < count) | (fixed & (k < point)))
        place(".", (fixed & (point == k + 1) & (count > point)) | (exponential & (k == 0) & (count > 1)))
    for k in range(DIGITS, 16):  # 1200000000000000.0
        place("0", fixed & (k < point))
    place(".", fixed & (count <= point))
    place("0", fixed & (count <= point))
    power_of_ten = point - 1
    exponent_digits = np.take(_THOUSANDS, np.clip(np.abs(power_of_ten), 0, 999)).view(np.uint8).reshape(-1, 4).T
    place("e", exponential)
    place("-", exponential & (power_of_ten < 0))
    place("+", exponential & (power_of_ten >= 0))
    place(exponent_digits[0], exponential & (np.abs(power_of_ten) >= 100))
    place(exponent_digits[1], exponential)
    place(exponent_digits[2], exponential)
    cells = np.stack(places) if places else np.full((0, len(values)), PAD, dtype=np.uint8)
    return fits, cells if fits.all() else cells[:, fits]


def _float_cells(values: np.ndarray, as_int: np.ndarray) -> np.ndarray | None:
    """``repr`` of each float (of each whole one ``as_int`` marks, below 2**53: of the int), or
    None if one is not finite. Floats of more than DIGITS significant digits are written by
    Python."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    zero = (values == 0) & ~as_int
    rest = np.flatnonzero(~as_int & ~zero)
    fits, cells = _decimal_cells(values[rest])
    python = np.sort(np.concatenate([np.flatnonzero(zero), rest[~fits]]))  # 0.0, -0.0 and the longer ones
    return _merged(len(values), [(as_int, _integer_cells(values[as_int].astype(np.int64))), (rest[fits], cells),
                                 (python, _text_cells([repr(value) for value in values[python].tolist()]))])


def _number_cells(column: np.ndarray) -> np.ndarray | None:
    if column.dtype.kind in "iu":
        return _integer_cells(column)
    as_int = column.whole() if isinstance(column, Plain) else np.zeros(len(column), dtype=bool)
    return _float_cells(column.view(np.ndarray), as_int)


def _text_cells(texts: list[str]) -> np.ndarray:
    """Each text as its UTF-8 bytes, PAD after them."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    width = int(lengths.max(initial=0))
    if width == 0:
        return np.full((0, len(texts)), PAD, dtype=np.uint8)
    out = np.ascontiguousarray(np.array(encoded, dtype=f"S{width}").view(np.uint8).reshape(len(texts), width).T)
    out[np.arange(width)[:, None] >= lengths] = PAD
    return out


def _cells(column, text) -> np.ndarray:
    """A column's cells: numbers by NumPy, a ``Coded`` column's values once each, others by
    ``text(value)``."""
    cells = _number_cells(column) if isinstance(column, np.ndarray) else None
    if isinstance(column, Coded):
        return np.take(_text_cells([text(value) for value in column.values]), column.codes, axis=1)
    if cells is None:
        cells = _text_cells([text(value) for value in python_values(column)])
    return cells


def _joined(parts: list[np.ndarray]) -> str:
    """The text of the rows whose places ``parts`` hold, in order."""
    matrix = np.ascontiguousarray(np.vstack(parts).T)
    return matrix[matrix != PAD].tobytes().decode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- CSV
def _csv_cell(value) -> str:
    """What csv.writer writes for one value in a row of several (its default dialect, "\\n" lines)."""
    if value is None:
        return ""
    if type(value) is float:
        return repr(value)
    text = str(value)
    if _SPECIAL(text):  # the csv module decides
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow([text, ""])
        return line.getvalue()[: -len(",\n")]
    return text


def csv_text(columns: list, rows: int) -> str:
    """The CSV lines of ``rows`` rows (``columns`` as the module docstring says), as csv.writer
    writes them with ``lineterminator="\\n"``."""
    if not rows:
        return ""
    parts = []
    for column in columns:
        parts += [_cells(column, _csv_cell), _chars(rows, ",")]
    parts[-1] = _chars(rows, "\n")
    return _joined(parts)


# --------------------------------------------------------------------------- JSON
def json_text(names: list[str], columns: list, rows: int, ensure_ascii: bool, dumps, end: str) -> str:
    """Each row as ``dumps({name: value})`` writes it (json.dumps with ``ensure_ascii``, keys
    in the order given), followed by ``end``. Numbers and text are written here as the json
    module writes them, any other value (an explanation) by ``dumps``."""
    if not rows:
        return ""
    quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    parts = []
    for position, (name, column) in enumerate(zip(names, columns)):
        parts.append(_chars(rows, ("{" if position == 0 else ", ") + quote(name) + ": "))
        parts.append(_cells(column, lambda value: _json_cell(value, quote, dumps)))
    parts.append(_chars(rows, "}" + end))
    return _joined(parts)


def _json_cell(value, quote, dumps) -> str:
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return quote(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)  # int.__repr__ and float.__repr__: what json writes
    return dumps(value)


