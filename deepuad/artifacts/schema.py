"""The declared schema of every field of every artifact kind, and the checks derived from it.

Each kind module declares its datasets (``Array``) and attributes (``Attr``) beside its writer
and reader. ``open_artifact`` checks every declaration that needs no data read (a dataset's
dtype, rank and lengths; an attribute's type, range and, for JSON, its whole structure) before
it hands the file out; ``read_array`` and ``read_json`` check a dataset's values when they are
read. A file that breaks a declaration is an InputError naming the file and the field (exit 3),
so a reader never meets a value of the wrong type, rank or range. tests/test_artifacts_schema.py breaks
every declared field in every way its declaration allows (wrong dtype, rank, range, missing).

A bound may be a number or a reference into the same file, resolved when checked:
"attr:NAME" is the value of the root attribute NAME, "len:NAME" the length of dataset NAME,
"dim:NAME:K" the length of its axis K, "value:NAME" the first value of a small numeric dataset,
"bound:NAME" a bound the kind derives from other fields (``Kind.bounds``: the most re-selection
records a training of the declared epochs can make). A bound whose referent is missing is not
applied (the referent's own declaration reports it).
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

MAX_TEXT = 1 << 16  # characters of a JSON string: deepuad's longest are paths and column names
MAX_ITEMS = 1 << 20  # entries of a JSON list or object: a vocabulary of the 10,000 one-hot columns, a file list


class SchemaError(ValueError):
    """A value breaks its declaration: ``field`` names it (``params.p``, ``iterations[3].loss``)."""

    def __init__(self, field: str, problem: str, other_variant: bool = False):
        self.field, self.problem, self.other_variant = field, problem, other_variant
        super().__init__(f"'{field}' {problem}")


# ----------------------------------------------------------------------------- value types
@dataclass(frozen=True)
class Number:
    """A real number (``integer``: a whole one) in [low, high] and below ``below``; never infinite,
    NaN only with ``nan`` (an undefined metric, the loss before the first epoch). The range
    applies to the finite values."""

    low: float | str | None = None
    high: float | str | None = None
    integer: bool = False
    nan: bool = False
    low_open: bool = False  # low itself is excluded
    below: str | float | None = None  # an exclusive upper bound (an index below a length)
    infinite: bool = False  # +-inf allowed (the variance of an empty cluster)


@dataclass(frozen=True)
class Flag:
    """True or false: a bool, or the integer 0 or 1."""


@dataclass(frozen=True)
class Text:
    """At most ``max_len`` characters; one of ``choices``, or of the names a function returns when checked."""

    max_len: int = MAX_TEXT
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()


@dataclass(frozen=True)
class Seq:
    """A JSON list of ``item``s, ``min_len`` to ``max_len`` long (``length``: exactly that long)."""

    item: object
    min_len: int = 0
    max_len: int = MAX_ITEMS
    length: str | int | None = None


@dataclass(frozen=True)
class Record:
    """A JSON object: ``fields`` declared by name (``required`` must be there), any other key's
    value declared by ``other`` (None: any value, unchecked: a stage's parameters not read back)."""

    fields: dict = field(default_factory=dict)
    required: tuple[str, ...] = ()
    other: object | None = None
    max_len: int = MAX_ITEMS


@dataclass(frozen=True)
class Either:
    """Any one of ``specs`` ("auto" or a whole number; None, the JSON null, or a number)."""

    specs: tuple


@dataclass(frozen=True)
class Const:
    """Exactly ``value`` (``true`` where a record's other fields depend on it)."""

    value: object


def Nullable(spec) -> Either:  # noqa: N802 (it declares a field, as the classes do)
    return Either((None, spec))


@dataclass(frozen=True)
class Json:
    """Text holding a JSON document of ``spec`` (an attribute, or a scalar string dataset)."""

    spec: object


@dataclass(frozen=True)
class Attr:
    """A root attribute."""

    spec: object
    required: bool = False


@dataclass(frozen=True)
class Inflation:
    """How far the datasets deepuad writes compressed may inflate: together, the datasets that
    share one Inflation declare at most ``floor`` bytes, or ``ratio`` times the file's size if
    that is more (``safe_read.check_inflation``; DEEPUAD_MAX_INFLATION replaces the ratio).
    ``cost`` says what each declared byte costs a reader (for the message). With ``row_bytes``,
    a row (along the first axis) counts as that many bytes at least, plainly stored or not: what
    costs time by the row (scoring) is then bounded in rows too."""

    floor: int
    ratio: float
    cost: str
    row_bytes: int = 0


@dataclass(frozen=True)
class Array:
    """A dataset: numpy dtype ``kinds`` allowed ("f" floats, "iu" integers, "b" bools, "OS"
    text), its rank, its length along axis 0 (``length`` exactly, ``max_len`` at most), each
    value's range (``values``), for a scalar string dataset the JSON it holds (``json``) and, for
    one that deepuad writes compressed, how far it may inflate (``inflation``; any other dataset
    may declare no more bytes than it stores)."""

    kinds: str
    ndim: int | tuple[int, ...]
    required: bool = False
    values: Number | None = None
    length: str | int | None = None
    max_len: str | int | None = None
    json: object | None = None
    inflation: Inflation | None = None


KIND_NAMES = {"f": "floats", "i": "integers", "u": "integers", "b": "booleans", "O": "text", "S": "text"}


def describe_kinds(kinds: str) -> str:
    return " or ".join(dict.fromkeys(KIND_NAMES[k] for k in kinds))


def param_schema(constraints, max_width: int = MAX_ITEMS, max_layers: int = MAX_ITEMS):
    """The declaration of a recorded parameter: what its constraints (``params.PARAMS``) allow,
    a list of layer widths at most ``max_layers`` long of widths at most ``max_width``."""
    kinds = tuple(_param_kind(constraint, max_width, max_layers) for constraint in constraints)
    return kinds[0] if len(kinds) == 1 else Either(kinds)


def _param_kind(constraint, max_width: int, max_layers: int):
    from deepuad.estimators.constraints import Integral, Options, Widths

    if constraint is None:
        return None
    if constraint is bool:
        return Flag()
    if constraint is str:
        return Text()
    if isinstance(constraint, Options):  # a registry's names: read when a value is checked
        return Text(choices=constraint.choices if callable(constraint.values) else constraint.choices())
    if isinstance(constraint, Widths):
        return Seq(_param_kind(replace(constraint.item, high=max_width), max_width, max_layers), min_len=1,
                   max_len=max_layers)
    left, right = constraint.closed in ("both", "left"), constraint.closed in ("both", "right")
    return Number(constraint.low, constraint.high if right else None, integer=constraint.kind is Integral,
                  low_open=not left, below=None if right else constraint.high)


# ----------------------------------------------------------------------------- the checks
def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bound(bound, resolve: Callable[[str], float | None]):
    return resolve(bound) if isinstance(bound, str) else bound


def check_value(spec, value, where: str, resolve: Callable[[str], float | None]) -> None:
    """SchemaError unless the JSON (or attribute) ``value`` is what ``spec`` declares."""
    if spec is None:  # the JSON null
        if value is not None:
            raise SchemaError(where, "must be null")
        return
    if isinstance(spec, Either):
        errors = []
        for option in spec.specs:
            try:
                return check_value(option, value, where, resolve)
            except SchemaError as error:
                errors.append(error)
        # an option whose Const did not match is another variant: the others say what is wrong
        errors = [error for error in errors if not error.other_variant] or errors
        errors = [error for error in errors if error.field == errors[0].field]
        raise SchemaError(errors[0].field, " or ".join(dict.fromkeys(error.problem for error in errors)))
    if isinstance(spec, Const):
        if not (type(value) is type(spec.value) and value == spec.value):
            raise SchemaError(where, f"must be {json.dumps(spec.value)}, got {_shown(value)}", other_variant=True)
        return
    if isinstance(spec, Json):
        raise TypeError("Json is parsed by its reader, not checked as a value")
    if isinstance(spec, Number):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(where, f"must be a number, got {_shown(value)}")
        if spec.integer and not (isinstance(value, int) or (math.isfinite(value) and value == int(value))):
            raise SchemaError(where, f"must be a whole number, got {_shown(value)}")
        _check_number(spec, value, where, resolve)
    elif isinstance(spec, Flag):
        if not (isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))):
            raise SchemaError(where, f"must be true or false, got {_shown(value)}")
    elif isinstance(spec, Text):
        if not isinstance(value, str):
            raise SchemaError(where, f"must be text, got {_shown(value)}")
        if len(value) > spec.max_len:
            raise SchemaError(where, f"is {len(value):,} characters long (at most {spec.max_len:,})")
        choices = spec.choices() if callable(spec.choices) else spec.choices
        if choices and value not in choices:
            raise SchemaError(where, f"must be one of {', '.join(choices)}, got {_shown(value)}")
    elif isinstance(spec, Seq):
        if not isinstance(value, list):
            raise SchemaError(where, f"must be a list, got {_shown(value)}")
        _check_length(len(value), spec.min_len, spec.max_len, spec.length, where, resolve)
        for index, item in enumerate(value):
            check_value(spec.item, item, f"{where}[{index}]", resolve)
    elif isinstance(spec, Record):
        if not isinstance(value, dict):
            raise SchemaError(where, f"must be an object, got {_shown(value)}")
        if len(value) > spec.max_len:
            raise SchemaError(where, f"has {len(value):,} keys (at most {spec.max_len:,})")
        for key, item in value.items():  # before what is missing: a Const says which variant this is
            declared = spec.fields.get(key, spec.other)
            if declared is not None:
                check_value(declared, item, f"{where}.{key}", resolve)
        for key in spec.required:
            if key not in value:
                raise SchemaError(f"{where}.{key}", "is missing")
    else:
        raise TypeError(f"unknown field type {spec!r}")


def _check_length(n: int, min_len: int, max_len, length, where: str, resolve) -> None:
    exact = _bound(length, resolve)
    if exact is not None and n != exact:
        raise SchemaError(where, f"has {n:,} entries, expected {int(exact):,}")
    most = _bound(max_len, resolve)
    if n < min_len:
        raise SchemaError(where, f"has {n:,} entries, fewer than {min_len:,}")
    if most is not None and n > most:
        raise SchemaError(where, f"has {n:,} entries, more than {int(most):,}")


def _check_number(spec: Number, value: float, where: str, resolve) -> None:
    """``check_numbers`` of one value, in plain Python: a list of records checks thousands."""
    if value != value:
        if not spec.nan:
            raise SchemaError(where, "is NaN")
        return
    if value in (math.inf, -math.inf):
        if not spec.infinite:
            raise SchemaError(where, "is infinite")
        return
    low, high, below = (_bound(b, resolve) for b in (spec.low, spec.high, spec.below))
    _check_range(spec, value, value, low, high, below, where, "is")


def check_numbers(spec: Number, values: np.ndarray, where: str, resolve) -> None:
    """SchemaError unless every one of ``values`` (a numeric array) is in ``spec``'s range."""
    if values.dtype.kind == "b" or values.size == 0:
        return
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any() and not spec.nan:
            raise SchemaError(where, f"holds NaN (first at {int(np.argmax(nan.ravel()))})")
        infinite = np.isinf(values)
        if infinite.any() and not spec.infinite:
            raise SchemaError(where, "holds infinite values")
        if spec.integer and not (nan | (values == np.round(values))).all():
            raise SchemaError(where, "must hold whole numbers")
        finite = values[~(nan | infinite)]
        if not finite.size:
            return
        smallest, largest = float(finite.min()), float(finite.max())
    else:
        smallest, largest = int(values.min()), int(values.max())
    low, high, below = (_bound(b, resolve) for b in (spec.low, spec.high, spec.below))
    _check_range(spec, smallest, largest, low, high, below, where)


def _check_range(spec: Number, smallest, largest, low, high, below, where: str, verb: str = "holds") -> None:
    if low is not None and (smallest < low or (spec.low_open and smallest <= low)):
        raise SchemaError(where, f"{verb} {smallest:g}, {'at or ' if spec.low_open else ''}below its minimum {low:g}")
    if high is not None and largest > high:
        raise SchemaError(where, f"{verb} {largest:g}, above its maximum {high:g}")
    if below is not None and largest >= below:
        raise SchemaError(where, f"{verb} {largest:g}, not below {below:g}")


def check_array_shape(spec: Array, dataset, where: str) -> None:
    """A dataset's dtype kind and rank (no data read)."""
    if dataset.dtype.kind not in spec.kinds:
        raise SchemaError(where, f"has dtype {dataset.dtype}, expected kind {spec.kinds!r} ({describe_kinds(spec.kinds)})")
    ranks = spec.ndim if isinstance(spec.ndim, tuple) else (spec.ndim,)
    if dataset.ndim not in ranks:
        raise SchemaError(where, f"has {dataset.ndim} dimensions, expected {' or '.join(map(str, ranks))}")


def check_array_length(spec: Array, dataset, where: str, resolve) -> None:
    """A dataset's length along axis 0 (no data read); its rank is checked first, and so are the
    ranks of the datasets whose lengths it refers to."""
    if dataset.ndim:
        _check_length(dataset.shape[0], 0, spec.max_len, spec.length, where, resolve)


def check_array_values(spec: Array, data: np.ndarray, where: str, resolve) -> None:
    if spec.values is not None and data.dtype.kind in "iubf":
        check_numbers(spec.values, data, where, resolve)


def declared(table: Mapping, name: str):
    """``table[name]``, or the entry whose key is a pattern ("weights/*") that ``name`` matches."""
    if name in table:
        return table[name]
    for pattern, spec in table.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
            return spec
    return None


# kind -> its declared datasets, and the bounds it derives (filled by envelope.register)
DATASETS: dict[str, Mapping[str, Array]] = {}
BOUNDS: dict[str, dict[str, Callable]] = {}


def _kind_of(f) -> str:
    kind = f.attrs.get("deepuad_kind")
    return kind.decode("utf-8", "replace") if isinstance(kind, bytes) else str(kind)


def dataset_spec(f, name: str) -> Array | None:
    """The declaration of dataset ``name`` of the open artifact ``f`` (None: undeclared)."""
    return declared(DATASETS.get(_kind_of(f), {}), name)


def resolver(f) -> Callable[[str], float | None]:
    """Resolve the references of the module doc in the open HDF5 file ``f``."""
    def resolve(reference: str):
        what, _, name = reference.partition(":")
        if what == "bound":
            return BOUNDS[_kind_of(f)][name](f)
        if what == "attr":
            value = f.attrs.get(name)
            return None if value is None or np.ndim(value) or np.asarray(value).dtype.kind not in "iuf" else float(value)
        if what == "value":  # checked against its own declaration before it bounds another field
            dataset, spec = f.get(name), dataset_spec(f, name)
            if dataset is None or not hasattr(dataset, "dtype") or dataset.dtype.kind not in "iuf" or dataset.size != 1:
                return None
            values = np.asarray(dataset[()]).ravel()
            if spec is not None:
                check_array_shape(spec, dataset, name)
                check_array_values(spec, values, name, resolve)
            return float(values[0])
        axis = 0
        if what == "dim":
            name, _, axis_text = name.rpartition(":")
            axis = int(axis_text)
        dataset = f.get(name)
        if dataset is None or not hasattr(dataset, "shape") or len(dataset.shape) <= axis:
            return None
        return dataset.shape[axis]
    return resolve


def python_value(value):
    """An HDF5 attribute's value as JSON would hold it: text, int, float, bool, or a list."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.ndim:
        return [python_value(v) for v in value.tolist()]
    if isinstance(value, (np.generic, np.ndarray)):
        return python_value(value.item())
    return value
