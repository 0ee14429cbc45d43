"""The op registry: each op declared once with signature, attributes, inference and reference."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .dtypes import DType, dtype as to_dtype
from .errors import IRError, ShapeError
from .graph import Graph
from .types import TensorType

REQUIRED = object()

# What each trait promises; passes and lowerings ask OPS[op].has(trait) instead of keeping name lists,
# and tests/ir/test_op_traits.py checks every promise for every op that declares the trait.
TRAITS = {
    "elementwise": "each output element depends only on the operands' elements at its (broadcast) index; "
                   "an elementwise emitter computes it inline in a fused loop",
    "integer": "an elementwise op that accepts integer operands as they are (no cast to float first)",
    "anchor": "a matmul/convolution whose lowering takes a fused epilogue (bias, activation or requantize) on "
              "its output",
    "reduction": "reduces `axes` of its one operand; its lowering reads a fused elementwise prologue inline",
    "view": "the output is the operand's elements in the same order (same count and dtype): it can share "
            "the operand's storage",
}


@dataclass(frozen=True)
class Attr:
    """Schema of one attribute: kind, default (REQUIRED if none) and allowed values."""

    kind: str  # int | float | bool | str | ints | floats | shape | dtype | array | graph (a region)
    default: Any = REQUIRED
    choices: tuple | None = None

    def normalize(self, value, op: str, name: str):
        try:
            v = _COERCE[self.kind](value)
        except (TypeError, ValueError) as e:
            raise IRError(f"op '{op}': attribute '{name}' expects {self.kind}, got {value!r} ({e})") from None
        if self.choices is not None and v not in self.choices:
            raise IRError(f"op '{op}': attribute '{name}' must be one of {list(self.choices)}, got {v!r}")
        return v


def _int(v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError("not an int")
    return int(v)


def _float(v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError("not a number")
    return float(v)


def _bool(v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError("not a bool")
    return bool(v)


def _str(v):
    if not isinstance(v, str):
        raise TypeError("not a string")
    return v


def _dim(v):
    if isinstance(v, str):
        if not v.isidentifier():
            raise ValueError(f"bad symbolic dimension {v!r}")
        return v
    return _int(v)


def _array(v):
    a = np.asarray(v)
    to_dtype(a.dtype)  # rejects unsupported element types
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _graph(v):
    # A region: a closed Graph (its own inputs, no params); the verifier checks it in place.
    if not isinstance(v, Graph):
        raise TypeError("not an ir.Graph")
    return v


_COERCE = {
    "int": _int,
    "float": _float,
    "bool": _bool,
    "str": _str,
    "ints": lambda v: tuple(_int(x) for x in v),
    "floats": lambda v: tuple(_float(x) for x in v),
    "shape": lambda v: tuple(_dim(x) for x in v),
    "dtype": to_dtype,
    "array": _array,
    "graph": _graph,
}


@dataclass
class OpDef:
    """Everything the IR knows about an op. Other concerns keep their own tables by `name`."""

    name: str
    inputs: tuple            # input names; a trailing "*name" means variadic (at least one)
    infer: Callable          # (input_types, attrs) -> list[TensorType]
    reference: Callable      # (input arrays, attrs, batch) -> list[np.ndarray]
    attrs: dict = field(default_factory=dict)
    differentiable: bool = True
    doc: str = ""
    traits: frozenset = frozenset()

    def has(self, trait: str) -> bool:
        if trait not in TRAITS:
            raise IRError(f"unknown op trait '{trait}'; known: {sorted(TRAITS)}")
        return trait in self.traits

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].startswith("*")

    def check_arity(self, n: int, where: str):
        fixed = len(self.inputs) - (1 if self.variadic else 0)
        ok = n >= fixed + 1 if self.variadic else n == fixed
        if not ok:
            want = f"at least {fixed + 1}" if self.variadic else str(fixed)
            raise IRError(f"{where}: op '{self.name}' takes {want} input(s) ({', '.join(self.inputs)}), got {n}")

    def normalize_attrs(self, attrs: dict, where: str) -> dict:
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise IRError(f"{where}: op '{self.name}' has no attribute(s) {sorted(unknown)}; "
                          f"known: {sorted(self.attrs)}")
        out = {}
        for key, spec in self.attrs.items():
            if key in attrs:
                try:
                    out[key] = spec.normalize(attrs[key], self.name, key)
                except IRError as e:
                    raise IRError(f"{where}: {e}") from None
            elif spec.default is REQUIRED:
                raise IRError(f"{where}: op '{self.name}' requires attribute '{key}'")
            else:  # defaults are normalized too (e.g. dtype "f32" -> f32)
                out[key] = spec.normalize(spec.default, self.name, key)
        return out

    def infer_types(self, in_types: Sequence[TensorType], attrs: dict, where: str) -> list:
        self.check_arity(len(in_types), where)
        try:
            out = self.infer(list(in_types), attrs)
        except ShapeError as e:
            raise ShapeError(f"{where}: op '{self.name}': {e}") from None
        except TypeError:
            # inference does arithmetic on sizes: a symbol past the batch dimension (a sequence length T)
            # reaches ops that need that size known. Any other TypeError is a bug and propagates.
            symbolic = [t for t in in_types if any(isinstance(d, str) for d in t.shape[1:])]
            if not symbolic:
                raise
            raise ShapeError(f"{where}: op '{self.name}' needs static sizes where its inputs "
                             f"{[str(t) for t in in_types]} have a symbolic dimension") from None
        return list(out) if isinstance(out, (list, tuple)) else [out]


OPS: dict[str, OpDef] = {}


def defop(name: str, inputs, infer, reference, attrs=None, differentiable=True, doc="", traits=()):
    """Register an op. Called once per op, beside its inference and reference functions."""
    if name in OPS:
        raise IRError(f"op '{name}' is registered twice")
    unknown = set(traits) - set(TRAITS)
    if unknown:
        raise IRError(f"op '{name}': unknown trait(s) {sorted(unknown)}; known: {sorted(TRAITS)}")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    OPS[name] = OpDef(name, inputs, infer, reference, dict(attrs or {}), differentiable, doc, frozenset(traits))
    return OPS[name]


def ops_with(trait: str) -> frozenset:
    """Names of the registered ops that declare `trait`."""
    if trait not in TRAITS:
        raise IRError(f"unknown op trait '{trait}'; known: {sorted(TRAITS)}")
    return frozenset(name for name, op in OPS.items() if trait in op.traits)


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise IRError(f"unknown op '{name}'") from None


def shape_fail(msg: str):
    raise ShapeError(msg)


def attrs_equal(a: dict, b: dict) -> bool:
    """Attribute dicts compare by value: NaN equals NaN, -0.0 differs from 0.0; arrays by dtype, shape, bits."""
    return a.keys() == b.keys() and all(_same_attr(a[k], b[k]) for k in a)


def _same_attr(x, y) -> bool:
    if isinstance(x, Graph) or isinstance(y, Graph):  # regions: structurally, by their canonical text
        from .text import print_graph
        return isinstance(x, Graph) and isinstance(y, Graph) and (x is y or print_graph(x) == print_graph(y))
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                and x.shape == y.shape and _bits(x) == _bits(y))
    if isinstance(x, tuple) and isinstance(y, tuple):
        return len(x) == len(y) and all(map(_same_attr, x, y))
    if isinstance(x, float) and isinstance(y, float):
        return (x != x and y != y) or (x == y and math.copysign(1.0, x) == math.copysign(1.0, y))
    return type(x) is type(y) and x == y


def _bits(a: np.ndarray) -> bytes:
    if a.dtype.kind == "f":  # one NaN: its sign and payload carry no meaning
        a = np.where(np.isnan(a), np.nan, a).astype(a.dtype)
    return a.tobytes()
