"""int8 convolutions in the window-row layout (passes/int8_window.py, compiler/kernels/int8_window.py):
the layout's definition, which convolutions take it, and the kernels bit-exact vs the reference on the
host's path (VNNI here), the forced AVX2 path and the portable one: 1-3 input channels, odd sizes,
strides, a row dilation, one kernel row, i8 and u8 activations, zero and nonzero weight zero points."""
import numpy as np
import pytest

from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes.int8_window import window_layout, window_rows, window_weights

from native_util import assert_native_matches, runnable_target

TARGETS = {"host": None, "avx2": host_target().without("avx512f"),
           "generic": host_target().without("avx512f", "avx2")}
VALID = {"strides": [1, 1], "dilations": [1, 1], "padding": "valid", "groups": 1}


def test_window_rows_pad_each_kernel_row_and_read_the_last_backward():
    # kh 2, kw 3, c 1, k groups of 4: row 0 = taps 0-2 then a zero, row 1 ends at its last tap
    assert window_rows(2, 3, 1, 4).tolist() == [0, 1, 2, -1, -1, 3, 4, 5]
    assert window_rows(3, 2, 2, 4).tolist() == list(range(12))          # 4 bytes a row: no padding
    w = np.arange(2 * 3 * 1 * 5, dtype=np.int8).reshape(2, 3, 1, 5)
    got = window_weights(w, 4)
    assert got.shape == (8, 5) and not got[3].any() and not got[4].any()
    np.testing.assert_array_equal(got[[0, 1, 2, 5, 6, 7]], w.reshape(6, 5))


@pytest.mark.parametrize("x_shape, w_shape, attrs, group, want", [
    ((None, 28, 28, 1), (3, 3, 1, 16), VALID, 4, (3, 3, 1)),
    ((None, 13, 13, 16), (3, 3, 16, 32), VALID, 2, (3, 3, 16)),
    ((None, 28, 28, 1), (3, 3, 1, 16), dict(VALID, padding="same"), 4, None),     # taps in the padding
    ((None, 28, 28, 2), (3, 3, 1, 16), dict(VALID, groups=2), 4, None),           # grouped
    ((None, 28, 28, 1), (3, 3, 1, 16), dict(VALID, dilations=[1, 2]), 4, None),   # taps apart along W
    ((None, 28, 28, 1), (1, 3, 1, 16), VALID, 4, None),     # one kernel row that would read past the input
    ((None, 28, 28, 4), (1, 3, 4, 16), VALID, 4, (1, 3, 4)),  # ... unless it needs no padding
    ((None, 9, 9, 1), (5, 1, 1, 8), VALID, 4, None),         # 5 words where the dense layout has 2
    ((None, 9, 9, 96), (3, 3, 96, 8), VALID, 4, None),       # rows of 288 bytes: the generic copies are whole vectors
])
def test_which_convolutions_take_the_window_layout(x_shape, w_shape, attrs, group, want):
    assert window_layout(x_shape, w_shape, attrs, group) == want


CASES = [   # x [H, W, C], w [KH, KW, C, COUT], strides, dilations, x dtype, weight zero point
    ((12, 11, 1), (3, 3, 1, 16), (1, 1), (1, 1), "i8", 0),
    ((9, 13, 1), (3, 3, 1, 5), (2, 1), (2, 1), "u8", "per-column"),
    ((10, 7, 3), (3, 2, 3, 33), (1, 2), (1, 1), "i8", 0),
    ((7, 9, 2), (2, 3, 2, 9), (1, 1), (1, 1), "u8", -3),
    ((6, 5, 4), (1, 3, 4, 17), (1, 1), (1, 1), "i8", 0),
]


def _graph():
    rng = np.random.default_rng(11)
    b = GraphBuilder("q_window")
    outs = []
    for i, (xs, ws, strides, dil, dt, wz) in enumerate(CASES):
        x = b.input(f"x{i}", TensorType(["N", *xs], dt))
        w = b.param(f"w{i}", rng.integers(-127, 128, ws).astype(np.int8))
        zp = b.constant(np.array(-5, np.int8) if dt == "i8" else np.array(140, np.uint8))
        wzp = (b.constant(rng.integers(-4, 5, ws[3]).astype(np.int8)) if wz == "per-column"
               else b.constant(np.array(wz, np.int8)))
        acc = b.conv2d_integer(x, w, zp, wzp, strides=list(strides), dilations=list(dil))
        outs.append(acc)
        if i % 2 == 0:   # also through the fused bias + requantize (relu) epilogue
            bias = b.param(f"bias{i}", rng.integers(-2000, 2000, ws[3]).astype(np.int32))
            mult = b.constant(rng.uniform(2e-4, 2e-3, ws[3]).astype(np.float32))
            outs.append(b.requantize(b.add(acc, bias), mult, b.constant(np.array(3, np.int8)), relu=True))
    return b.build(outs)


def _inputs(n, rng):
    types = {"i8": np.int8, "u8": np.uint8}
    return [rng.integers(*((-128, 128) if dt == "i8" else (0, 256)), (n, *xs)).astype(types[dt])
            for xs, _, _, _, dt, _ in CASES]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_window_convolutions_bit_exact(target):
    t = runnable_target(TARGETS, target)
    g = _graph()
    code = Compilation({"forward": g}, "win", CompileOptions(target=t)).llvm_ir
    assert code.count("a.win") >= len(CASES)   # each convolution packs its rows in the window layout
    rng = np.random.default_rng(12)
    assert_native_matches(g, lambda n: _inputs(n, rng), batches=(1, 2, 7), rtol=0, atol=0, target=t)
