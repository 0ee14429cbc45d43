"""The ONNX mapping table: one emitter per IR op, or an explicit reason why an op has none.

An emitter is `fn(ctx, node, ins, outs)`: it reads ONNX tensor names `ins` (one per IR input)
and must write ONNX tensors named `outs` (one per IR output), emitting nodes through `ctx`.
"""
from __future__ import annotations

from typing import Callable

from .context import EmitContext, UnsupportedOpError  # noqa: F401

EMITTERS: dict[str, Callable] = {}
UNSUPPORTED: dict[str, str] = {}


def onnx_op(*names: str):
    """Register the decorated emitter for the named IR ops."""
    def register(fn):
        for n in names:
            if n in EMITTERS or n in UNSUPPORTED:
                raise ValueError(f"ONNX mapping for op '{n}' is registered twice")
            EMITTERS[n] = fn
        return fn
    return register


def unsupported(name: str, reason: str):
    """Declare that IR op `name` has no faithful ONNX form, and why."""
    if name in EMITTERS or name in UNSUPPORTED:
        raise ValueError(f"ONNX mapping for op '{name}' is registered twice")
    UNSUPPORTED[name] = reason


from . import elementwise, reduce, linalg, shape, index, nn, random, fused, quant, control, sparse  # noqa: E402,F401  (fill the table)
from . import qat  # noqa: E402,F401  (fake_quantize)
from . import along_axis  # noqa: E402,F401  (cumsum, top_k)
from . import image  # noqa: E402,F401  (resize, affine_transform)

unsupported("cross_process_sum", "it sums over the processes of a data-parallel training job; an exported "
            "inference graph has no processes to sum over (synchronized BatchNormalization uses it only in training)")
