"""Checking layer arguments at construction, in the layer's words (not int()'s or NumPy's, deep inside).

Every check names the layer, its class and the argument, says what was expected and shows what came:
`Dense(-3)` and `"units": "sixteen"` in a loaded config fail the same way, before any weight exists.
All raise ValueError, as Keras does for invalid layer arguments.
"""
from __future__ import annotations

import math
import numbers


def _where(layer, arg: str) -> str:
    return f"layer '{layer.name}' ({type(layer).__name__}): argument `{arg}`"


def _bad(layer, arg: str, expected: str, value):
    raise ValueError(f"{_where(layer, arg)} must be {expected}, got {value!r} ({type(value).__name__})")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _one_int(minimum: int) -> str:
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def integer(layer, arg: str, value, minimum: int = 1) -> int:
    """An int >= minimum (default: positive); bools, floats and strings are refused."""
    if not _is_int(value) or value < minimum:
        _bad(layer, arg, _one_int(minimum), value)
    return int(value)


def int_tuple(layer, arg: str, value, n: int | None, minimum: int = 1) -> tuple:
    """An int or n ints, each >= minimum, as Keras's standardize_tuple (n None: a sequence of any length)."""
    items = (value,) * n if _is_int(value) and n is not None else value
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        items = None
    else:
        items = tuple(items)
    if items is None or n is not None and len(items) != n or not all(_is_int(x) and x >= minimum for x in items):
        one = _one_int(minimum)
        _bad(layer, arg, f"a tuple, each item {one}" if n is None else f"{one} or a tuple of {n} such integers", value)
    return tuple(int(x) for x in items)


def number(layer, arg: str, value, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, optional: bool = False):
    """A finite real number in [low, high] (an end is open where *_open); None passes where optional."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}, "
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        rng = f" in {lo}{hi}" if low is not None and high is not None else (
            f" {'>' if low_open else '>='} {low}" if low is not None else "")
        _bad(layer, arg, f"a finite number{rng}", value)
    return float(value)


def choice(layer, arg: str, value, allowed: tuple) -> str:
    """One of the allowed strings (compared in lower case)."""
    if not isinstance(value, str) or value.lower() not in allowed:
        _bad(layer, arg, f"one of {list(allowed)}", value)
    return value.lower()


def axis(layer, arg: str, value) -> int:
    """An axis index (negative counts from the end)."""
    if not _is_int(value):
        _bad(layer, arg, "an integer axis", value)
    return int(value)
