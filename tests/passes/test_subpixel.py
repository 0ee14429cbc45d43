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


IG_CASES = [(k, s, pad, h) for k, s, pad, h in itertools.product((1, 2, 3, 5), (2, 3), ("valid", "same"), (5, 8))
            if not (pad == "valid" and k > 4)]


def _input_grad_graph(k, s, pad, h, groups=1, dilations=(1, 1)):
    from kcompile.ir.ops.nn import conv_geometry
    oh, ow = conv_geometry(h, k, s, dilations[0], pad)[0], conv_geometry(4, 2, 2, dilations[1], pad)[0]
    b = GraphBuilder("dx")
    dy = b.input("dy", TensorType(("N", oh, ow, 4)))
    w = b.input("w", TensorType((k, 2, 2 // groups, 4)))
    return b.build([b.conv2d_input_grad(dy, w, input_shape=("N", h, 4, 2), strides=(s, 2), padding=pad,
                                        groups=groups, dilations=dilations)])


@pytest.mark.parametrize("k,s,pad,h", IG_CASES)
def test_strided_input_grad_takes_the_phase_form(k, s, pad, h):
    """conv2d's input gradient is the same strided scatter: same rewrite, same result."""
    g = _input_grad_graph(k, s, pad, h)
    out = subpixel_conv_transpose(g)
    verify(out)
    assert "conv2d_input_grad" not in [n.op for n in out.nodes]
    rng = np.random.default_rng(k * 10 + s + h)
    xs = [rng.standard_normal((2, *g.inputs[0].type.shape[1:])).astype(np.float32),
          rng.standard_normal(g.inputs[1].type.shape).astype(np.float32)]
    np.testing.assert_allclose(run(out, xs)[0], run(g, xs)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"groups": 2}, {"dilations": (2, 1)}])
def test_grouped_and_dilated_input_grads_are_left_alone(kwargs):
    g = _input_grad_graph(3, 2, "same", 8, **kwargs)
    assert [n.op for n in subpixel_conv_transpose(g).nodes] == ["conv2d_input_grad"]


def test_strided_conv_training_step_natively_equals_the_reference():
    """A strided Conv2D's train step holds conv2d_input_grad; natively it runs in the phase form and
    trains exactly as the reference interpreter (the strided op) does."""
    import kcompile as kc
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 9, 8, 3)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    weights = []
    for backend in ("native", "reference"):
        kc.utils.set_random_seed(1)
        model = kc.Sequential([kc.Input((9, 8, 3)), kc.layers.Conv2D(4, 3, strides=2, padding="same"),
                               kc.layers.Conv2D(5, 3, strides=2, activation="relu"), kc.layers.Flatten(),
                               kc.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse", backend=backend)
        if backend == "native":
            step = model.train_step_graph(y)
            assert sum(n.op == "conv2d_input_grad" for n in step.nodes) == 1   # the first conv's has no use
            assert "conv2d_input_grad" not in [n.op for n in subpixel_conv_transpose(step).nodes]
        model.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
