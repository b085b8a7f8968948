"""From scores to answers: which rows are the most anomalous, shown in their original columns.

Pure functions on arrays and the stored encoding (no files, no printing): ``rank`` orders rows
by score, ``Decoder`` turns rows of X back into the columns the input had, undoing the scaler
and turning each one-hot group back into its category. ``deepuad.stages.answers`` reads the
artifacts and writes the outputs.
"""

from __future__ import annotations

import numpy as np

# arrays (NumPy inputs, pixels, video features) wider than this are shown without their values:
# 3,072 pixel columns answer nothing, the id (a path) does
MAX_ARRAY_COLUMNS = 32
# a one-hot group whose decoded values all stay below this held a category unseen at fit time
# (extract --like encodes it as all zeros)
UNSEEN_BELOW = 0.5


def rank(scores: np.ndarray, is_anomaly: np.ndarray | None = None, n: int | None = None,
         flagged: bool = False) -> np.ndarray:
    """Row indices by decreasing score (ties: the earlier row first); with ``flagged`` only the
    rows with ``is_anomaly`` set, else the first ``n`` (all when None)."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.flatnonzero(np.asarray(is_anomaly) != 0) if flagged else np.arange(len(scores))
    order = rows[np.argsort(-scores[rows], kind="stable")]
    return order if n is None else order[:n]


def plain(value: float):
    """A decoded number at float32 precision (7 significant digits), as int when whole: the
    encoding keeps float32, so 54540 comes back as 54540.0003; shown as the input wrote it."""
    value = float(f"{float(value):.7g}")
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# 10**k for k up to 22: the powers of ten a float64 holds exactly
_POWERS = np.array([float(10**k) for k in range(23)])


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``float(f"{v:.{digits}g}")`` of every value, as float64 (the same numbers), a column at a
    time: v is scaled by an exact power of ten to ``digits`` digits before the point and rounded
    half to even, as Python's formatting rounds. Scaling rounds once, by half a unit in the last
    place at most, so a scaled value further than two units from a half is rounded as its exact
    value would be; the few within them, and values beyond 1e+-22 of ``digits`` digits (no exact
    power), are formatted by Python."""
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()  # 0 and -0 stay as they are (and NaN, infinities: never decoded)
    magnitude = np.abs(values)
    nonzero = magnitude > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shift = (digits - 1) - np.floor(np.log10(np.where(nonzero, magnitude, 1.0)))  # digits - 1 - the exponent
        fast = nonzero & (np.abs(shift) < len(_POWERS))
        shift = np.where(fast, shift, 0).astype(np.int64)
        power = _POWERS[np.abs(shift)]
        scaled = np.where(shift >= 0, values * power, values / power)
        whole = np.rint(scaled)
        size = np.abs(scaled)
        fast &= (size >= _POWERS[digits - 1]) & (size < _POWERS[digits])  # the exponent was right
        fast &= np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) > 2 * np.spacing(size)  # no tie in reach
    out[fast] = np.where(shift >= 0, whole / power, whole * power)[fast]
    for i in np.flatnonzero(nonzero & ~fast & np.isfinite(values)):
        out[i] = float(f"{values[i]:.{digits}g}")
    return out


class Plain(np.ndarray):
    """Decoded numbers, ``plain``'s a column at a time: float64 values rounded to 7 significant
    digits, of which a whole one below 2**53 stands for an int (``values`` gives them so)."""

    @classmethod
    def of(cls, values: np.ndarray) -> "Plain":
        return round_significant(values, 7).view(cls)

    def whole(self) -> np.ndarray:
        values = self.view(np.ndarray)
        return (values == np.floor(values)) & (np.abs(values) < 2**53)

    def values(self) -> list:
        """``[plain(v) for v in the original values]``: ints where whole, floats otherwise."""
        values, whole = self.view(np.ndarray), self.whole()
        if whole.all():
            return values.astype(np.int64).tolist()
        out = values.astype(object)  # Python floats, and ints where whole
        out[whole] = values[whole].astype(np.int64)
        return out.tolist()


class Coded:
    """A column of few distinct values (categories, per-row text): row i holds
    ``values[codes[i]]``. Sliced like an array; ``values`` may hold some that no row does."""

    def __init__(self, codes: np.ndarray, values: list):
        self.codes, self.values = np.asarray(codes, dtype=np.int64), list(values)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows: slice) -> "Coded":
        return Coded(self.codes[rows], self.values)

    def tolist(self) -> list:
        table = np.empty(len(self.values), dtype=object)
        table[:] = self.values
        return table[self.codes].tolist()

    @classmethod
    def of(cls, values: np.ndarray, text) -> "Coded":
        """``[text(v) for v in values]`` (a NumPy array), ``text`` called once per distinct value."""
        if values.dtype.kind == "O":  # Python objects: a dictionary finds the distinct ones
            index: dict = {}
            codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
            return cls(codes, [text(v) for v in index])
        distinct, codes = np.unique(values, return_inverse=True)
        return cls(codes.reshape(-1), [text(v) for v in distinct])


def python_values(column) -> list:
    """A column of a chunk of rows (a list, a ``Plain``, another NumPy array or ``Coded``) as
    Python values."""
    if isinstance(column, Plain):
        return column.values()
    return column.tolist() if isinstance(column, (np.ndarray, Coded)) else list(column)


class Decoder:
    """Rows of X -> values in the original columns, for a features file's ``encoding``.

    ``columns``: the original column names (a table's categorical columns first, then its
    numeric ones; an array's x0, x1, ... unless wider than MAX_ARRAY_COLUMNS, then none).
    ``groups``: (column name, first, stop) of every original column over the columns of X, in
    X's order; contiguous, covering all of X. ValueError for an encoding that does not fit."""

    def __init__(self, encoding: dict, width: int):
        self.width = width
        try:
            self.offset = np.asarray(encoding["offset"], dtype=np.float64)
            self.scale = np.asarray(encoding["scale"], dtype=np.float64)
            self.array = bool(encoding.get("array"))
            if self.array:
                self.numeric = [str(name) for name in encoding.get("feature_names") or [f"x{i}" for i in range(width)]]
                self.categorical: list[str] = []
                self.vocabularies: dict[str, list[str]] = {}
            else:
                self.numeric = [str(c) for c in encoding["numeric_columns"]]
                self.categorical = [str(c) for c in encoding["categorical_columns"]]
                self.vocabularies = {str(c): [str(v) for v in encoding["vocabularies"][c]] for c in self.categorical}
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the stored encoding is incomplete or malformed ({type(error).__name__}: {error})") from None
        encoded = len(self.numeric) + sum(len(self.vocabularies[c]) for c in self.categorical)
        if not (encoded == width == len(self.offset) == len(self.scale)):
            raise ValueError(f"the stored encoding describes {encoded} columns ({len(self.offset)} scaler entries) but X has {width}")
        if not (np.isfinite(self.offset).all() and np.isfinite(self.scale).all()):
            raise ValueError("the stored scaler holds NaN or infinite values")
        self.groups: list[tuple[str, int, int]] = [(name, i, i + 1) for i, name in enumerate(self.numeric)]
        first = len(self.numeric)
        for column in self.categorical:
            stop = first + len(self.vocabularies[column])
            self.groups.append((column, first, stop))
            first = stop
        if self.array and width > MAX_ARRAY_COLUMNS:
            self.columns: list[str] = []
        else:
            self.columns = self.categorical + self.numeric

    def unscale(self, X: np.ndarray) -> np.ndarray:
        """X in the input's units, rounded to what float32 X can tell apart (about 1e-7 of each
        column's scale), so that a 0 stored as 5.96e-09 comes back as 0."""
        raw = np.asarray(X, dtype=np.float64) * self.scale + self.offset
        quantum = 10.0 ** np.floor(np.log10(np.abs(self.scale) * 1e-7))
        return np.round(raw / quantum) * quantum

    def decode(self, X: np.ndarray, expected: bool = False) -> list[dict]:
        """One {column: value} per row of X, for ``columns``. A category comes back as its text
        (None where the row held a category unseen at fit time); with ``expected`` (X is a
        reconstruction) the category the row's group points to most, whatever its level."""
        columns = [python_values(values) for values in self.decode_columns(X, expected).values()]
        return [dict(zip(self.columns, row)) for row in zip(*columns)] if columns else [{} for _ in range(len(X))]

    def decode_columns(self, X: np.ndarray, expected: bool = False) -> dict:
        """``decode`` a column at a time: {column: its values in the rows of X}, a ``Plain``
        array for a number, ``Coded`` for a category."""
        raw = self.unscale(X)
        out: dict = {}
        for name, first, stop in self.groups:
            if name in self.vocabularies:
                vocabulary = self.vocabularies[name]
                if stop == first:
                    out[name] = Coded(np.zeros(len(raw), dtype=np.int64), [None])
                    continue
                part = raw[:, first:stop]
                best = np.argmax(part, axis=1)
                if not expected:  # None: the code after the vocabulary's
                    best[part[np.arange(len(part)), best] < UNSEEN_BELOW] = len(vocabulary)
                out[name] = Coded(best, [*vocabulary, None])
            elif self.columns:
                out[name] = Plain.of(raw[:, first])
        return {column: out[column] for column in self.columns}

    def group_values(self, X: np.ndarray, expected: bool = False) -> list[list]:
        """Per row, the decoded value of every group (in ``groups`` order), whatever the width."""
        raw = self.unscale(X)
        out = []
        for row in raw:
            values = []
            for name, first, stop in self.groups:
                if name in self.vocabularies:
                    part = row[first:stop]
                    best = int(np.argmax(part)) if len(part) else -1
                    ok = best >= 0 and (expected or part[best] >= UNSEEN_BELOW)
                    values.append(self.vocabularies[name][best] if ok else None)
                else:
                    values.append(plain(row[first]))
            out.append(values)
        return out


def output_names(columns: list[str], reserved: tuple[str, ...]) -> dict[str, str]:
    """Original column -> the name it gets in an output whose own columns are ``reserved``
    (a data column called "score" must not hide the score)."""
    names = {}
    for column in columns:
        name = column
        while name in reserved or name in names.values():
            name = f"{name}_value"
        names[column] = name
    return names
