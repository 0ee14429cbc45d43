"""TensorType: a static shape and a dtype. The leading (batch) dimension may be the symbol N; other
dimensions may be symbols too (a dynamic sequence length T), bound by the inputs at run time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from .dtypes import DType, dtype as to_dtype
from .errors import ShapeError

Dim = Union[int, str]
BATCH = "N"
INT64_MAX = (1 << 63) - 1   # element counts and byte sizes are int64 in generated code


def _check_dim(d, pos: int) -> Dim:
    if isinstance(d, str):
        if not d.isidentifier():
            raise ValueError(f"symbolic dimension {d!r} is not an identifier")
        return d
    if isinstance(d, bool) or not isinstance(d, int) and not hasattr(d, "__index__"):
        raise TypeError(f"dimension {pos} must be an int or a symbol, got {d!r}")
    d = int(d)
    if d < 0:
        raise ValueError(f"dimension {pos} must be >= 0, got {d}")
    return d


def _check_size(dims: tuple, dt: DType) -> None:
    """Element count and byte size (per batch row when the batch is symbolic) must fit int64: native
    code indexes with int64, so a larger shape would wrap around and address garbage. A zero-sized
    dimension does not excuse the others: the strides still multiply them."""
    span = 1
    for d in dims:
        if isinstance(d, int):
            span *= max(d, 1)
    if span * dt.itemsize > INT64_MAX:
        per_row = " per batch row" if any(isinstance(d, str) for d in dims) else ""
        raise ShapeError(f"shape {shape_str(dims)} of {dt.name} spans {span} elements ({span * dt.itemsize} "
                         f"bytes){per_row}: more than int64 indexing can address (at most {INT64_MAX} bytes)")


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: DType

    def __init__(self, shape: Iterable[Dim], dtype="f32"):
        dims = tuple(_check_dim(d, i) for i, d in enumerate(shape))
        for i, d in enumerate(dims):
            if i and d == BATCH or i and isinstance(d, str) and d == dims[0]:
                raise ValueError(f"the batch symbol {d} may only be the leading dimension, got shape {dims}")
        object.__setattr__(self, "shape", dims)
        object.__setattr__(self, "dtype", to_dtype(dtype))
        _check_size(dims, self.dtype)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def has_batch(self) -> bool:
        return bool(self.shape) and isinstance(self.shape[0], str)

    @property
    def dynamic_dims(self) -> tuple:
        """The symbols of the non-leading dimensions (e.g. a dynamic sequence length T)."""
        return tuple(d for d in self.shape[1:] if isinstance(d, str))

    def concrete_shape(self, batch: int | None = None, dims: dict | None = None) -> tuple:
        """The shape with the batch symbol replaced by `batch` and other symbols by `dims`."""
        shape = self.shape
        if self.has_batch:
            if batch is None:
                raise ValueError(f"type {self} has a symbolic batch dimension; a batch size is needed")
            shape = (int(batch),) + shape[1:]
        if self.dynamic_dims:
            missing = [d for d in self.dynamic_dims if d not in (dims or {})]
            if missing:
                raise ValueError(f"type {self} has symbolic dimension(s) {missing}; their sizes are needed")
            shape = shape[:1] + tuple(int(dims[d]) if isinstance(d, str) else d for d in shape[1:])
        return shape

    def numel(self, batch: int | None = None, dims: dict | None = None) -> int:
        n = 1
        for d in self.concrete_shape(batch, dims):
            n *= d
        return n

    def with_shape(self, shape) -> "TensorType":
        return TensorType(shape, self.dtype)

    def with_dtype(self, dt) -> "TensorType":
        return TensorType(self.shape, dt)

    def __str__(self) -> str:
        return f"{self.dtype.name}[{','.join(str(d) for d in self.shape)}]"

    __repr__ = __str__


def shape_str(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
