"""TensorType: a static shape (leading batch dimension may be the symbol N) and a dtype."""
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
            if isinstance(d, str) and i != 0:
                raise ValueError(f"only the leading dimension may be symbolic, got shape {dims}")
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

    def concrete_shape(self, batch: int | None = None) -> tuple:
        """The shape with the batch symbol replaced by `batch`."""
        if self.has_batch:
            if batch is None:
                raise ValueError(f"type {self} has a symbolic batch dimension; a batch size is needed")
            return (int(batch),) + self.shape[1:]
        return self.shape

    def numel(self, batch: int | None = None) -> int:
        n = 1
        for d in self.concrete_shape(batch):
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
