"""subpixel-conv-transpose: the stride-1 phase-channel form equals the strided conv2d_transpose (reference
interpreter) for every kernel/stride/padding/output_padding mix, and leaves what it cannot help alone."""
import itertools

import numpy as np
import pytest

from kcompile.compiler.driver import graph_pipeline
from kcompile.ir import GraphBuilder, TensorType, verify
from kcompile.passes.subpixel import subpixel_conv_transpose
from kcompile.runtime.reference import run

CASES = [(k, s, pad, op) for k, s, pad, op in itertools.product((1, 2, 3, 4, 5), (2, 3), ("valid", "same"),
                                                                 (None, 0, 1, 2))
         if op is None or op < s]


def _graph(kernel, attrs):
    b = GraphBuilder("up")
    x = b.input("x", TensorType(("N", 5, 4, 3)))
    w = b.input("w", TensorType((*kernel, 2, 3)))
    return b.build([b.conv2d_transpose(x, w, **attrs)])


@pytest.mark.parametrize("k,s,pad,op", CASES)
def test_same_result_as_the_strided_op(k, s, pad, op):
    kernel, strides = (k, max(k - 1, 1)), (s, 2)
    g = _graph(kernel, {"strides": strides, "padding": pad, "output_padding": () if op is None else (op, min(op, 1))})
    out = subpixel_conv_transpose(g)
    verify(out)
    (node,) = [n for n in out.nodes if n.op == "conv2d_transpose"]
    assert tuple(node.attrs["strides"]) == (1, 1)
    rng = np.random.default_rng(k * 10 + s)
    xs = [rng.standard_normal((2, 5, 4, 3)).astype(np.float32), rng.standard_normal((*kernel, 2, 3)).astype(np.float32)]
    np.testing.assert_allclose(run(out, xs)[0], run(g, xs)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs", [{}, {"dilations": (2, 1), "padding": "same"}])
def test_stride_one_and_dilated_are_left_alone(attrs):
    g = _graph((3, 3), attrs)
    assert [n.op for n in subpixel_conv_transpose(g).nodes] == ["conv2d_transpose"]


def test_in_the_native_pipeline_before_canonicalize():
    names = graph_pipeline(3)
    assert names.index("subpixel-conv-transpose") < names.index("canonicalize")
    assert "subpixel-conv-transpose" not in graph_pipeline(0)
