"""The counter-based random op has no ONNX form: ONNX random ops are not bit-reproducible."""
from __future__ import annotations

from . import unsupported

unsupported("random_uniform_like", "its counter-based hash has no ONNX form (ONNX RandomUniformLike draws "
                                   "different numbers); export the inference graph, which has no dropout")
