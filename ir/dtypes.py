"""The element types of the IR and their NumPy counterparts."""
from __future__ import annotations

import numpy as np


class DType:
    """An element type: short name for the text form, NumPy dtype for the reference."""

    __slots__ = ("name", "np", "is_float", "is_int", "is_signed")
    _by_name: dict[str, "DType"] = {}

    def __init__(self, name: str, np_dtype, is_float: bool, is_int: bool, is_signed: bool):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_float = is_float
        self.is_int = is_int
        self.is_signed = is_signed
        DType._by_name[name] = self

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):
        return (dtype, (self.name,))


f32 = DType("f32", np.float32, True, False, True)
f64 = DType("f64", np.float64, True, False, True)
i8 = DType("i8", np.int8, False, True, True)
u8 = DType("u8", np.uint8, False, True, False)
i32 = DType("i32", np.int32, False, True, True)
i64 = DType("i64", np.int64, False, True, True)
bool_ = DType("bool", np.bool_, False, False, False)

ALL_DTYPES = (f32, f64, i8, u8, i32, i64, bool_)
_ALIASES = {
    "float32": f32, "float64": f64, "int8": i8, "uint8": u8, "int32": i32,
    "int64": i64, "bool": bool_, "float": f32, "double": f64,
}


def dtype(x) -> DType:
    """Coerce a DType, an IR name ('f32'), a NumPy-style name ('float32') or a NumPy dtype."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        if x in DType._by_name:
            return DType._by_name[x]
        if x in _ALIASES:
            return _ALIASES[x]
    try:
        npd = np.dtype(x)
    except TypeError:
        npd = None
    for d in ALL_DTYPES:
        if npd is not None and d.np == npd:
            return d
    raise TypeError(f"unsupported dtype {x!r}; expected one of {[d.name for d in ALL_DTYPES]}")
