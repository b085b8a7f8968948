"""What a parameter's value may be, declared as scikit-learn declares ``_parameter_constraints``:
a list of allowed kinds, and the value must be one of them. ``check`` raises ``ParamError``
naming the parameter and saying what the list allows.

The kinds: ``None`` (the value None); a type (``bool``, ``str``: an instance of it); an
``Interval`` of whole or real numbers; ``Options`` (one of some values, or of a registry's names,
read when checked); ``Widths`` (a non-empty sequence of whole numbers in an interval); ``Satisfies``
(a test of one's own, with what it asks for in words).

Standard library only: the command line checks its options with it before NumPy or torch is
imported.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Iterable

from deepuad.errors import ParamError

Integral, Real = numbers.Integral, numbers.Real


@dataclass(frozen=True)
class Interval:
    """A finite number of ``kind`` (``Integral`` or ``Real``; never a bool) from ``low`` to ``high``
    (None: unbounded); ``closed`` says which ends belong to it: "both", "left", "right" or "neither"."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def allows(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind) or not math.isfinite(value):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and not (value >= self.low if left else value > self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    def describe(self, plural: bool = False) -> str:
        noun = ("integers" if plural else "an integer") if self.kind is Integral else ("numbers" if plural else "a number")
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.high is None:
            if self.kind is Real and self.low == 0 and not left:
                return "positive numbers" if plural else "a positive number"
            return noun if self.low is None else f"{noun} {'>=' if left else '>'} {_number(self.low)}"
        if self.low is None:
            return f"{noun} {'<=' if right else '<'} {_number(self.high)}"
        return f"{noun} in {'[' if left else '('}{_number(self.low)}, {_number(self.high)}{']' if right else ')'}"


@dataclass(frozen=True)
class Options:
    """One of ``values``, or of the names a function returns (a registry imported only when a
    value is checked: clustering methods, scores, rules)."""

    values: tuple | Callable[[], Iterable]

    def choices(self) -> tuple:
        return tuple(self.values() if callable(self.values) else self.values)

    def allows(self, value) -> bool:
        return isinstance(value, str) and value in self.choices()

    def describe(self, plural: bool = False) -> str:
        choices = self.choices()
        return repr(choices[0]) if len(choices) == 1 else "one of " + ", ".join(map(str, choices))


@dataclass(frozen=True)
class Widths:
    """A non-empty list or tuple of ``item``s (an ``Interval`` of whole numbers), at most ``max_len``."""

    item: Interval
    max_len: int | None = None

    def allows(self, value) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) >= 1 and (self.max_len is None or len(value) <= self.max_len)
                and all(self.item.allows(v) for v in value))

    def describe(self, plural: bool = False) -> str:
        most = f" (at most {self.max_len})" if self.max_len is not None else ""
        return f"a non-empty sequence of {self.item.describe(plural=True)}{most}"


@dataclass(frozen=True)
class Satisfies:
    """A value that passes ``test``; ``what`` says in words what that asks for."""

    test: Callable[[object], bool]
    what: str

    def allows(self, value) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def describe(self, plural: bool = False) -> str:
        return self.what


def allows(constraint, value) -> bool:
    """Whether ``value`` is of the one kind ``constraint``."""
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint) and (constraint is bool or not isinstance(value, bool))
    return constraint.allows(value)


def describe(constraints, none: str = "None") -> str:
    """What ``constraints`` allow, in words: "None or a number in (0, 100)" (``none``: the word for
    None, as the command line spells it)."""
    words = []
    for constraint in constraints:
        if constraint is None:
            words.append(none)
        elif constraint is bool:
            words.append("True or False")
        elif isinstance(constraint, type):
            words.append(f"a {constraint.__name__}")
        else:
            words.append(constraint.describe())
    return " or ".join(words)


def check(name: str, value, constraints) -> None:
    """ParamError "<name> must be <what constraints allow>, got <value>" unless ``value`` is one of
    the kinds ``constraints`` lists."""
    if not any(allows(constraint, value) for constraint in constraints):
        raise ParamError(name, refusal(constraints, value), constraints, value)


def refusal(constraints, value, none: str = "None") -> str:
    """"must be <what constraints allow>, got <value>" (``none``: the word for None)."""
    return f"must be {describe(constraints, none)}, got {value!r}"


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
