"""Tabular input: a table's columns to a numeric matrix, with a reusable encoding (reading a CSV/TSV:
``delimited``; Parquet and Arrow: ``parquet``; NumPy files: ``arrays``).

``TabularEncoder`` is fitted in one streaming pass over chunks of rows (so a CSV larger than
memory can be encoded): numeric columns are kept, text columns are one-hot encoded with
their sorted vocabulary, and a scaler (min-max, standard or none) is fitted on the encoded
columns. Its ``to_dict()`` is plain JSON, stored in the features artifact, so that
``extract --like`` encodes new data identically; categories unseen at fit time encode as
all-zero one-hot rows and are counted.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from deepuad.errors import DataError, ParamError, RequestError
from deepuad.inputs.arrays import ENCODING_VERSION, SCALERS, check_missing, gap_hint

MISSING_CATEGORY = "(missing)"  # --missing fill: the category a gap in a text column becomes
MAX_CATEGORY_CHARS = 4096  # a longer "category" is free text or a broken quote, not a category
# one-hot columns: a column of row IDs or free text read as categories would be one column per
# row (100,000 rows -> 10^10 cells); such a column should be dropped, not encoded
MAX_CATEGORIES = 1000
MAX_ENCODED_COLUMNS = 10_000
# numbers written with thousands separators ("1,004.45", "1.004,45", "1 004"): pandas reads them
# as text, and they would be one-hot encoded as one category per value
THOUSANDS_NUMBER = re.compile(r"[+-]?\d{1,3}(?:([,. '])\d{3})(?:\1\d{3})*(?:[.,]\d+)?")


class TabularEncoder:
    """Columns -> float32 features: numeric kept, text one-hot, then scaled.

    Parameters: ``categorical`` columns forced to one-hot, ``drop`` columns ignored,
    ``label_column`` kept out of the features, ``anomaly_values`` (label values meaning
    anomaly; None = labels must already be 0/1), ``scale`` in SCALERS, ``missing`` in MISSING
    (a gap in any feature column: refused, its row left out, or filled: with the column's median,
    in a text column with the category MISSING_CATEGORY),
    ``id_columns`` kept out of the features and carried beside them as text.
    Learned: ``numeric_columns_``, ``categorical_columns_``, ``vocabularies_``,
    ``offset_``/``scale_`` (x_scaled = (x - offset_) / scale_), ``fill_`` (missing="fill": the
    median of each numeric column), ``feature_names_``, ``n_rows_`` (rows fitted, those left
    out not counted).
    """

    def __init__(self, categorical=(), drop=(), label_column=None, anomaly_values=None, scale="minmax", missing="error",
                 id_columns=()):
        if scale not in SCALERS:
            raise ParamError("scale", f"must be one of {', '.join(SCALERS)}, got {scale!r}")
        self.categorical = list(categorical)
        self.drop = list(drop)
        self.label_column = label_column
        self.anomaly_values = None if anomaly_values is None else [str(v) for v in anomaly_values]
        self.scale = scale
        self.missing = check_missing(missing)
        self.id_columns = list(id_columns)

    # ------------------------------------------------------------------ fitting
    def partial_fit(self, df: pd.DataFrame, path) -> "TabularEncoder":
        if not hasattr(self, "numeric_columns_"):
            self._setup_columns(df, path)
        self._check_columns(df, path, require_label=True)
        self._rows_seen += len(df)
        df = df[~self.gap_rows(df)]
        if self.missing == "error":
            self._refuse_text_gaps(df, path)
        for column in self.categorical_columns_:
            values = self._categories(df[column])
            counts = values.value_counts()
            vocabulary = self._counts.setdefault(column, {})
            for value, count in counts.items():
                if len(value) > MAX_CATEGORY_CHARS:
                    raise DataError(f"column {column!r} holds a {len(value):,}-character value, too long for a category "
                                    "(free text, or a broken quote?); `drop` it", path)
                vocabulary[value] = vocabulary.get(value, 0) + int(count)
            if column not in self.categorical:
                self._count_numberlike(column, df[column], path)
        if self.label_column is not None and self.anomaly_values is not None:
            present = df[self.label_column].astype(str).str.strip()
            for value in self.anomaly_values:
                self._anomaly_counts[value] += int((present == value).sum())
            if len(self._label_examples) < 20:
                self._label_examples.update(present.unique()[:20].tolist())
        numeric = self._numeric_block(df, path)  # NaN at the gaps when missing="fill"
        self._n += len(numeric)
        if self.missing == "fill":
            for j, values in enumerate(numeric.T):
                self._present[j].append(values[~np.isnan(values)])
        self._sum += np.nansum(numeric, axis=0)
        self._sumsq += np.nansum(numeric**2, axis=0)
        self._min = np.fmin(self._min, np.nanmin(numeric, axis=0, initial=np.inf))
        self._max = np.fmax(self._max, np.nanmax(numeric, axis=0, initial=-np.inf))
        return self

    @staticmethod
    def _categories(values: pd.Series) -> pd.Series:
        """A text column's categories: its text, and MISSING_CATEGORY for a gap (which pandas
        would turn into "nan" or keep as NaN, depending on its version)."""
        return values.astype(object).where(values.notna(), MISSING_CATEGORY).astype(str)

    def _refuse_text_gaps(self, df: pd.DataFrame, path) -> None:
        """missing="error": DataError for a gap in a text (categorical) column."""
        gaps = df[self.categorical_columns_].isna().to_numpy()
        if gaps.any():
            row, col = np.argwhere(gaps)[0]
            raise DataError(gap_hint(f"{int(gaps.any(axis=1).sum())} row(s) have missing values, first in column "
                                     f"{self.categorical_columns_[col]!r} at data row {int(df.index[row]) + 1} (a gap)"), path)

    def gap_rows(self, df: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows to leave out: with missing="drop", those with a gap in a
        feature column; else none."""
        if self.missing != "drop":
            return np.zeros(len(df), dtype=bool)
        return df[self.numeric_columns_ + self.categorical_columns_].isna().any(axis=1).to_numpy()

    def id_values(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """{id column: its values as text ("" for a gap)}, for the rows of ``df``."""
        return {str(c): df[c].astype(object).where(df[c].notna(), "").astype(str).to_numpy(dtype=object) for c in self.id_columns}

    def _setup_columns(self, df: pd.DataFrame, path) -> None:
        for name, columns in (("categorical", self.categorical), ("drop", self.drop), ("id_columns", self.id_columns)):
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise ParamError(name, f"names column(s) not in {path}: {', '.join(map(str, missing))}")
        if self.label_column is not None and self.label_column in (*self.categorical, *self.drop, *self.id_columns):
            raise RequestError(f"the label column {self.label_column!r} cannot also be given to `categorical`, `drop` or "
                               "`id_columns`")
        both = [c for c in self.id_columns if c in (*self.categorical, *self.drop)]
        if both:
            raise ParamError("id_columns", f"{both[0]} is not a feature: it cannot also be given to `categorical` or `drop`")
        if self.label_column is not None and self.label_column not in df.columns:
            raise RequestError(f"label column {self.label_column!r} is not in {path}; columns are "
                               f"{', '.join(map(str, df.columns[:12]))}...")
        features = [c for c in df.columns if c not in self.drop and c != self.label_column and c not in self.id_columns]
        if not features:
            raise DataError("no feature columns left after `drop`, `label_column` and `id_columns`", path)
        self.categorical_columns_ = [
            c for c in features if c in self.categorical or not pd.api.types.is_numeric_dtype(df[c])
        ]
        self.numeric_columns_ = [c for c in features if c not in self.categorical_columns_]
        self._counts: dict[str, dict[str, int]] = {}
        width = len(self.numeric_columns_)
        self._n = 0
        self._rows_seen = 0  # before --missing drop
        # per text column not forced with --categorical: rows that read as numbers, rows written
        # with thousands separators, and the first row that is neither (see _check_text_columns)
        self._numberlike: dict[str, list] = {c: [0, 0, None, None] for c in self.categorical_columns_ if c not in self.categorical}
        self._anomaly_counts = dict.fromkeys(self.anomaly_values or (), 0)
        self._label_examples: set[str] = set()
        self._sum, self._sumsq = np.zeros(width), np.zeros(width)
        self._min, self._max = np.full(width, np.inf), np.full(width, -np.inf)
        self._present: list[list[np.ndarray]] = [[] for _ in range(width)]  # missing="fill": the values, for the medians

    def _count_numberlike(self, column, values: pd.Series, path) -> None:
        values = values[values.notna()]  # a gap is neither a number nor text: --missing decides about it
        text = values.astype(str).str.strip()
        numeric = pd.to_numeric(text, errors="coerce").notna().to_numpy()
        thousands = ~numeric & text.str.fullmatch(THOUSANDS_NUMBER).to_numpy()
        counts = self._numberlike[column]
        counts[0] += int(numeric.sum())
        counts[1] += int(thousands.sum())
        if counts[2] is None and thousands.any():
            counts[2] = text.iloc[int(np.argmax(thousands))]
        other = ~numeric & ~thousands
        if counts[3] is None and other.any():
            row = int(np.argmax(other))
            counts[3] = (text.iloc[row], int(values.index[row]) + 1)

    def _check_text_columns(self, path) -> None:
        """DataError for a text column that holds numbers: with one typo (or "n/a") a numeric
        column is read as text and would silently become one one-hot column per distinct
        value; written with thousands separators, every value would be its own category."""
        for column, (numeric, thousands, thousands_example, other) in self._numberlike.items():
            if thousands and numeric + thousands >= self._n / 2:
                raise DataError(f"column {column!r} holds numbers written with thousands separators (e.g. "
                                f"{thousands_example!r}), which would be one-hot encoded as text; remove the separators, or "
                                f"pass `categorical` {column} if it really is categorical", path)
            if numeric >= self._n / 2 and other is not None:
                raise DataError(f"column {column!r} is numeric except {self._n - numeric} value(s), first {other[0]!r} at data "
                                f"row {other[1]}; it would be one-hot encoded as text. Fix those values, or pass "
                                f"`categorical` {column} if it really is categorical", path)

    def _check_anomaly_values(self, path) -> None:
        never = [value for value, count in self._anomaly_counts.items() if count == 0]
        if never:
            seen = ", ".join(repr(v) for v in sorted(self._label_examples)[:8])
            raise ParamError("anomaly_values", f"{', '.join(map(repr, never))} never occur(s) in label column "
                             f"{self.label_column!r} of {path} (values there include {seen}); check the spelling")

    def finish_fit(self, path) -> "TabularEncoder":
        """Turn the streamed statistics into vocabularies and scaler parameters."""
        if hasattr(self, "numeric_columns_") and self._n == 0 and self._rows_seen:
            raise DataError(f"every one of its {self._rows_seen} row(s) has a gap in a feature column: nothing is left after "
                            "`missing` drop", path)
        if not hasattr(self, "numeric_columns_") or self._n == 0:
            raise DataError("has a header but no data rows", path)
        self._check_text_columns(path)
        self._check_anomaly_values(path)
        for column, counts in self._counts.items():
            if len(counts) > MAX_CATEGORIES:
                raise DataError(f"column {column!r} has {len(counts):,} distinct values (at most {MAX_CATEGORIES:,} are one-hot "
                                f"encoded): an identifier or free text? `drop` {column}", path)
        width = len(self.numeric_columns_) + sum(len(counts) for counts in self._counts.values())
        if width > MAX_ENCODED_COLUMNS:
            raise DataError(f"would encode to {width:,} columns (at most {MAX_ENCODED_COLUMNS:,}); `drop` wide categorical columns",
                            path)
        self.n_rows_ = self._n
        self._fit_fill(path)
        self.vocabularies_ = {c: sorted(self._counts.get(c, {})) for c in self.categorical_columns_}
        names = [str(c) for c in self.numeric_columns_]
        for column in self.categorical_columns_:
            names += [f"{column}={value}" for value in self.vocabularies_[column]]
        self.feature_names_ = names
        # statistics of the one-hot columns follow from the category counts
        n = self._n
        onehot_mean = np.array([self._counts[c][v] / n for c in self.categorical_columns_ for v in self.vocabularies_[c]])
        num_mean = self._sum / n
        num_var = np.maximum(self._sumsq / n - num_mean**2, 0.0)
        mean = np.concatenate([num_mean, onehot_mean])
        std = np.sqrt(np.concatenate([num_var, onehot_mean * (1 - onehot_mean)]))
        low = np.concatenate([self._min, (onehot_mean >= 1).astype(float) * 1.0])  # 0 unless always present
        high = np.concatenate([self._max, (onehot_mean > 0).astype(float)])
        if self.scale == "minmax":
            offset, scale = low, high - low
        elif self.scale == "standard":
            offset, scale = mean, std
        else:
            offset, scale = np.zeros_like(mean), np.ones_like(mean)
        scale = np.where(scale > 1e-12, scale, 1.0)  # constant columns: leave the scale alone
        self.offset_, self.scale_ = offset, scale
        return self

    def _fit_fill(self, path) -> None:
        """missing="fill": each numeric column's median over the rows fitted, and its gaps
        counted into the sums as that median (min and max cannot change: a median lies between)."""
        if self.missing != "fill":
            return
        fill = []
        for j, parts in enumerate(self._present):
            values = np.concatenate(parts) if parts else np.zeros(0)
            if not len(values):
                raise DataError(f"column {self.numeric_columns_[j]!r} holds no value at all: no median to fill its gaps "
                                f"with; `drop` {self.numeric_columns_[j]}", path)
            fill.append(float(np.median(values)))
            gaps = self._n - len(values)
            self._sum[j] += gaps * fill[-1]
            self._sumsq[j] += gaps * fill[-1] ** 2
        self.fill_ = np.array(fill, dtype=np.float64)
        del self._present

    # ------------------------------------------------------------------ encoding
    def transform(self, df: pd.DataFrame, path, filled: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, int]]:
        """(X float32, {column: rows with a category unseen at fit time}). Rows with gaps must
        have been left out (``gap_rows``) when missing="drop"; with missing="fill" the gaps are
        filled, and counted per column into ``filled``."""
        self._check_columns(df, path, require_label=False)
        numeric = self._numeric_block(df, path)
        if self.missing == "fill":
            gaps = np.isnan(numeric)
            if gaps.any():
                numeric = np.where(gaps, self.fill_, numeric)
                if filled is not None:
                    for j in np.flatnonzero(gaps.any(axis=0)):
                        column = str(self.numeric_columns_[j])
                        filled[column] = filled.get(column, 0) + int(gaps[:, j].sum())
        blocks = [numeric]
        unseen: dict[str, int] = {}
        if self.missing == "error":
            self._refuse_text_gaps(df, path)
        for column in self.categorical_columns_:
            vocabulary = self.vocabularies_[column]
            values = self._categories(df[column]).to_numpy()
            position = pd.Index(vocabulary).get_indexer(values)
            onehot = np.zeros((len(df), len(vocabulary)))
            known = position >= 0
            onehot[np.flatnonzero(known), position[known]] = 1.0
            if (~known).any():
                unseen[str(column)] = int((~known).sum())
            blocks.append(onehot)
        X = (np.concatenate(blocks, axis=1) - self.offset_) / self.scale_
        return X.astype(np.float32), unseen

    def labels(self, df: pd.DataFrame, path) -> np.ndarray | None:
        """y (int8, 1 = anomaly) from the label column, or None when there is none."""
        if self.label_column is None or self.label_column not in df.columns:
            return None
        raw = df[self.label_column]
        if self.anomaly_values is not None:
            return raw.astype(str).str.strip().isin(self.anomaly_values).to_numpy().astype(np.int8)
        values = pd.to_numeric(raw, errors="coerce")
        if values.isna().any() or not values.isin([0, 1]).all():
            examples = ", ".join(map(str, raw[~values.isin([0, 1])].astype(str).unique()[:3]))
            raise RequestError(
                f"label column {self.label_column!r} in {path} has values other than 0/1 (e.g. {examples}); "
                "say which mean anomaly with `anomaly_values`"
            )
        return values.to_numpy().astype(np.int8)

    def _check_columns(self, df: pd.DataFrame, path, require_label: bool) -> None:
        needed = self.numeric_columns_ + self.categorical_columns_
        if require_label and self.label_column is not None:
            needed = needed + [self.label_column]
        missing = [str(c) for c in needed if c not in df.columns]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing[:5])}", path)

    def _numeric_block(self, df: pd.DataFrame, path) -> np.ndarray:
        """The numeric columns as float64; NaN at the gaps with missing="fill". DataError for a
        non-numeric or infinite value, and for a gap with missing="error"."""
        raw = df[self.numeric_columns_]
        block = raw.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        gaps = raw.isna().to_numpy()
        bad = ~np.isfinite(block) & (~gaps if self.missing == "fill" else True)
        if bad.any():
            not_gap = bad & ~gaps  # no --missing helps with these: report one of them first
            row, col = np.argwhere(not_gap if not_gap.any() else bad)[0]
            count = int(bad.any(axis=1).sum())
            name = self.numeric_columns_[col]
            value = df.iloc[row][name]
            value = value if isinstance(value, str) else str(value)  # "inf", not "np.float64(inf)"; a gap reads 'nan'
            where = f"{count} row(s) have missing, non-numeric or infinite values, first in column {name!r} at data row " \
                    f"{int(df.index[row]) + 1} (value {value!r})"
            if not not_gap.any():
                raise DataError(gap_hint(f"{where}: a gap"), path)
            raise DataError(f"{where}; fix them, or pass `categorical` {name} if the column is categorical", path)
        return block

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """Plain JSON. ``missing``, ``id_columns`` and ``fill`` appear only when not the default,
        so that an encoding made without them reads (and fingerprints) as before."""
        params = {"categorical": self.categorical, "drop": self.drop, "label_column": self.label_column,
                  "anomaly_values": self.anomaly_values, "scale": self.scale}
        if self.missing != "error":
            params["missing"] = self.missing
        if self.id_columns:
            params["id_columns"] = [str(c) for c in self.id_columns]
        extra = {"fill": [float(v) for v in self.fill_]} if self.missing == "fill" else {}
        return {
            **extra,
            "encoding_version": ENCODING_VERSION,
            "params": params,
            "numeric_columns": [str(c) for c in self.numeric_columns_],
            "categorical_columns": [str(c) for c in self.categorical_columns_],
            "vocabularies": {str(k): v for k, v in self.vocabularies_.items()},
            "offset": [float(v) for v in self.offset_],
            "scale": [float(v) for v in self.scale_],
            "feature_names": self.feature_names_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "TabularEncoder":
        encoder = cls(**d["params"])
        encoder.numeric_columns_ = list(d["numeric_columns"])
        encoder.categorical_columns_ = list(d["categorical_columns"])
        encoder.vocabularies_ = {k: list(v) for k, v in d["vocabularies"].items()}
        encoder.offset_ = np.asarray(d["offset"], dtype=np.float64)
        encoder.scale_ = np.asarray(d["scale"], dtype=np.float64)
        encoder.feature_names_ = list(d["feature_names"])
        if encoder.missing == "fill":
            encoder.fill_ = np.asarray(d["fill"], dtype=np.float64)
        return encoder
