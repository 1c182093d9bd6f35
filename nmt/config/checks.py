"""What an option is: `option()` defines a dataclass field with its help and check, `Option` reads
it back, and the checks are small objects that say what a value must be beyond its type.

A check has `expected` (the end of "<option> must be ...") and `__call__(value) -> bool`. Standard
library only: `nmt.config.options` uses these to define the recipe's options.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import field
from typing import Any, Callable, Literal, NamedTuple


class Invalid(ValueError):
    """A refused value: "<option> must be `expected`, got `value`"."""

    def __init__(self, expected: str, value):
        super().__init__(expected)
        self.expected, self.value = expected, value


class Positive:
    """An integer above zero (a count that cannot be empty)."""
    expected = "a positive integer"

    def __call__(self, value) -> bool:
        return value > 0


class Interval:
    """A number in an interval written as in mathematics: "[0, 1)" holds 0 but not 1."""

    def __init__(self, text: str):
        self.expected = f"in {text}"
        self.low, self.high = (float(x) for x in text[1:-1].split(","))
        self.low_closed, self.high_closed = text[0] == "[", text[-1] == "]"

    def __call__(self, value) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below


class OneOf:
    """A name in a registry read when first needed (sacrebleu's tokenizers: the model imports
    these options and must not import sacrebleu)."""

    def __init__(self, what: str, names: Callable[[], typing.Sequence[str]]):
        self.what, self.names = what, names

    @property
    def expected(self) -> str:
        return f"{self.what}: " + ", ".join(self.names())

    def __call__(self, value) -> bool:
        return value in self.names()


class PositiveIntegers:
    """A list of positive integers (beam widths); the list itself is the option's type."""
    expected = "a list of positive integers"

    def __call__(self, value) -> bool:
        return isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


class SidePaths:
    """A mapping of a side to a file path, any of the sides or all."""

    def __init__(self, sides: tuple[str, ...]):
        self.sides = sides
        self.expected = f"a mapping of {' and/or '.join(sides)} to file paths"

    def __call__(self, value) -> bool:
        return all(side in self.sides and isinstance(path, str) and path
                   for side, path in value.items())


positive = Positive()


def option(default, help: str, check=None):
    """A recipe key: its default, its one-line help and its check (None: its type alone)."""
    metadata = {"help": help, "check": check}
    if isinstance(default, dict):  # a mutable default: each config gets its own copy
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


class Option(NamedTuple):
    """One recipe key as its field defines it."""
    section: str
    key: str
    type: Any  # the resolved annotation
    default: Any
    help: str
    check: Any  # an object with `expected` and `__call__(value) -> bool`, or None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def choices(self) -> tuple | None:
        """The allowed values, when they are a list of names (for command-line choices)."""
        if typing.get_origin(self.type) is Literal:
            return typing.get_args(self.type)
        if isinstance(self.check, OneOf):
            return tuple(self.check.names())
        return None

    def validate(self, value):
        """`value` (as YAML reads it) as the option holds it; raises `Invalid`."""
        value = _typed(self.type, value)
        if self.check is not None and not self.check(value):
            raise Invalid(self.check.expected, value)
        return _held(self.type, value)


def _typed(hint, value):
    """`value` checked against the annotation `hint`, as written (1 stays 1 for the messages).
    The numbers of a recipe are never negative. A bare `tuple` is a list its option's check
    describes."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise Invalid("one of " + ", ".join(map(str, typing.get_args(hint))), value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise Invalid("true or false", value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("an integer", value)
        if value < 0:
            raise Invalid("a positive integer", value)
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-8 (no dot) as a string; people write it
            value = _number_or_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid("a number", value)
        if not math.isfinite(value) or value < 0:
            raise Invalid("a finite non-negative number", value)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise Invalid("a string", value)
        return value
    if origin is tuple:  # tuple[item, ...]: every item checked as `item`
        if not isinstance(value, (list, tuple)):
            raise Invalid("a list", value)
        item = typing.get_args(hint)[0]
        return tuple(_held(item, _typed(item, v)) for v in value)
    if hint is tuple:
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise Invalid("a mapping", value)
        return dict(value)
    raise AssertionError(f"unhandled option type {hint}")


def _held(hint, value):
    """A checked value as the option holds it: floats as float, lists as tuples."""
    if hint is float:
        return float(value)
    return tuple(value) if hint is tuple else value


def _number_or_text(text: str):
    """The float a string such as "1e-8" stands for, or the string itself; words float() would
    also read ("nan", "inf") stay text, to be refused as not a number."""
    try:
        return float(text) if any(c.isdigit() for c in text) else text
    except ValueError:
        return text


def options_of(section: str, cls) -> dict[str, Option]:
    """The options of one section's dataclass, by key."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name}: define it as option(default, help, "
                            "check=...)")
    return {f.name: Option(section, f.name, hints[f.name],
                           f.default_factory() if f.default is dataclasses.MISSING else f.default,
                           f.metadata["help"], f.metadata["check"])
            for f in dataclasses.fields(cls)}
