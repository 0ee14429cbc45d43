"""sparse_qmatmul: matmul_integer with a constant symmetric int8 kernel stored sparse (a pruned, quantized layer).

(a - a_zero_point) @ W with exact i32 accumulation (wrapping modulo 2^32 like matmul_integer), a
8-bit [..., K] and W [K, N] int8 in the "windows" layout of ir/ops/sparse.py (values i8, index u8,
offsets i32). It is matmul_integer(a, W, a_zero_point, 0) bit for bit: the sparsify pass makes it
only from kernels whose zero point is zero (the quantize-int8 pass quantizes weights symmetrically,
so a pruned weight stays an exact zero). Its i32 output takes the same bias add and requantize
epilogue as the dense op (passes/fusion_outline.py: an integer anchor). The native kernel
(compiler/kernels/sparse_int8.py) uses block (G, C, P) = (128, 16, 4): four 8-bit products summed
into one i32 lane (vpdpbusd).
"""
from __future__ import annotations

import numpy as np

from ..dtypes import i32
from ..registry import defop
from ..types import TensorType
from ._util import require
from .quant import EIGHT_BIT
from .sparse import SPARSE_ATTRS, check_windows_types, to_dense


def _infer(ts, attrs):
    a, values, _, _, azp = ts
    require(attrs["layout"] == "windows", f"sparse_qmatmul stores its kernel in the 'windows' layout, got "
                                          f"layout {attrs['layout']!r}")
    require(a.dtype in EIGHT_BIT and a.rank >= 2,
            f"sparse_qmatmul needs an i8 or u8 input of rank >= 2, got {a}")
    require(values.dtype.name == "i8", f"sparse_qmatmul values must be i8 (the int8 kernel's nonzeros), got {values}")
    require(azp.dtype == a.dtype and azp.rank == 0,
            f"sparse_qmatmul: a_zero_point must be a 0-d {a.dtype.name}, got {azp}")
    return [TensorType(a.shape[:-1] + (check_windows_types("sparse_qmatmul", ts, attrs),), i32)]


def _reference(xs, attrs, batch):
    a, values, index, offsets, azp = xs
    # in i64: a slot stored twice adds its products, never a wrapped int8 sum of the values
    w = to_dense(values.astype(np.int64), index, offsets, a.shape[-1], attrs["block"], "windows", attrs["n"])
    acc = np.matmul(a.astype(np.int64) - np.int64(azp), w)
    return [acc.astype(np.int64).astype(np.int32)]   # modulo 2^32, as matmul_integer


defop("sparse_qmatmul", ("a", "values", "index", "offsets", "a_zero_point"), _infer, _reference,
      attrs=SPARSE_ATTRS, differentiable=False, traits=("anchor",),
      doc="(a - a_zero_point) @ W, exact i32, for a symmetric int8 kernel W stored in the windows layout "
          "(ir/ops/sparse_int8.py); the attributes as sparse_matmul's")
