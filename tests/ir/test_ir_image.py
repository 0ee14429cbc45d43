"""resize and affine_transform beyond the shared case tables: the wrap fill mode (no ONNX form) against
its oracle, bad operands, the non-differentiable entry, and the ONNX refusal of wrap."""
import numpy as np
import pytest

from kcompile.compiler.onnx_export import UnsupportedOpError, export_onnx
from kcompile.ir import GraphBuilder, IRError, TensorType
from kcompile.passes.autodiff import GradientError, backprop

import ir_oracles_image as img
from ir_util import rand, run_op

RNG = np.random.default_rng(5)


def test_wrap_mode_matches_its_oracle():
    t = np.array([[0.8, -0.6, 9.5, 0.6, 0.8, -7.25, 0.01, -0.02], [1.25, 0.25, -11, -0.25, 1.25, 4, 0, 0]], np.float32)
    for interp, rows in (("bilinear", t), ("nearest", t[1:])):   # dyadic: nearest's ties are exact
        attrs = {"fill_mode": "wrap", "interpolation": interp}
        x = rand(RNG, (len(rows), 5, 6, 3))
        np.testing.assert_allclose(run_op("affine_transform", [x, rows], attrs, (0, 1))[0],
                                   img.affine_transform([x, rows], attrs)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("types,attrs,match", [
    ([TensorType(["N", 5, 3])], {"size": (2, 2)}, "rank 4"),
    ([TensorType(["N", 5, 3, 2])], {"size": (2, 0)}, "two positive ints"),
    ([TensorType(["N", 5, 3, 2], "i32")], {"size": (2, 2)}, "floating-point"),
])
def test_resize_rejects_bad_operands(types, attrs, match):
    with pytest.raises(IRError, match=match):
        GraphBuilder("g").op("resize", *[GraphBuilder("g").input("x", t) for t in types], **attrs)


@pytest.mark.parametrize("tshape,match", [([7], "transform must be"), (["N", 6], "transform must be"),
                                          ([3, 8], "transform must be")])
def test_affine_transform_rejects_bad_transforms(tshape, match):
    b = GraphBuilder("g")
    with pytest.raises(IRError, match=match):
        b.op("affine_transform", b.input("x", TensorType(["N", 4, 4, 1])), b.input("t", TensorType(tshape)))


def test_affine_transform_rejects_unknown_modes():
    b = GraphBuilder("g")
    x, t = b.input("x", TensorType(["N", 4, 4, 1])), b.input("t", TensorType([8]))
    with pytest.raises(IRError, match="fill_mode.*one of"):
        b.op("affine_transform", x, t, fill_mode="edge")
    with pytest.raises(IRError, match="interpolation.*one of"):
        b.op("affine_transform", x, t, interpolation="bicubic")


def test_affine_transform_is_not_differentiable():
    b = GraphBuilder("g")
    x, t = b.input("x", TensorType(["N", 4, 4, 1])), b.input("t", TensorType([8]))
    with b.location("random_rotation"):
        y = b.op("affine_transform", x, t)
    loss = b.reduce_sum(y, axes=(0, 1, 2, 3))
    with pytest.raises(GradientError, match="random_rotation.*affine_transform.*not differentiable"):
        backprop(b, loss, [x])


def test_wrap_mode_is_not_exportable_and_names_the_node(tmp_path):
    b = GraphBuilder("g")
    x, t = b.input("x", TensorType(["N", 4, 4, 1])), b.input("t", TensorType([8]))
    with b.location("random_zoom"):
        y = b.op("affine_transform", x, t, fill_mode="wrap")
    with pytest.raises(UnsupportedOpError, match="random_zoom.*fill_mode='wrap' cannot be exported to ONNX"):
        export_onnx(b.build([y]), tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()
