"""Quantization ops compiled natively vs the reference interpreter, bit for bit: quantize/dequantize/
requantize (per tensor and per axis, ties, saturation, NaN/inf), matmul_integer and conv2d_integer
(u8 and i8 activations, per-tensor and per-column weight zero points, odd sizes, batch 1 and larger),
on the host's int8 path (VNNI here) and on the AVX2 path forced through a narrower target."""
import numpy as np
import pytest

from kcompile.compiler.kernels.int8_isa import int8_isa
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType

from native_util import assert_native_matches, runnable_target

TARGETS = {"host": None, "avx2": host_target().without("avx512f")}


def _target(name):
    t = runnable_target(TARGETS, name)
    return t


def _compare(graph, inputs, target, batches):
    assert_native_matches(graph, inputs, batches=batches, rtol=0, atol=0, target=target)


def _elementwise_graph():
    b = GraphBuilder("q_elementwise")
    x = b.input("x", TensorType(["N", 5, 37]))
    s, z = b.input("s", TensorType([37])), b.input("z", TensorType([37], "u8"))
    s0, z0 = b.input("s0", TensorType([])), b.input("z0", TensorType([], "i8"))
    s1, z1 = b.input("s1", TensorType([5])), b.input("z1", TensorType([5], "i8"))
    acc = b.input("acc", TensorType(["N", 5, 37], "i32"))
    q_last, q_tensor, q_mid = b.quantize(x, s, z), b.quantize(x, s0, z0), b.quantize(x, s1, z1, axis=1)
    outs = [q_last, q_tensor, q_mid, b.dequantize(q_last, s, z), b.dequantize(q_mid, s1, z1, axis=1),
            b.dequantize(q_tensor, s0, z0), b.dequantize(acc, s0, b.constant(np.array(3, np.int32))),
            b.requantize(acc, s, z0), b.requantize(acc, s0, b.constant(np.array(200, np.uint8)), relu=True),
            b.requantize(acc, s1, z0, axis=1, relu=True)]
    return b.build(outs)


def _elementwise_inputs(rng):
    def make(n):
        x = rng.uniform(-4, 4, (n, 5, 37)).astype(np.float32)
        x.flat[:8] = [np.nan, np.inf, -np.inf, 0.5, -2.5, 1e9, -1e9, -0.0]
        x[:, :, 9:20] = np.round(x[:, :, 9:20] * 2) / 2 * np.float32(0.03125)   # exact ties at scale 1/32
        acc = rng.integers(-300000, 300000, (n, 5, 37)).astype(np.int32)
        acc.flat[:3] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max, 0]
        s = rng.uniform(0.01, 0.05, 37).astype(np.float32)
        s[9:20] = 0.03125
        return [x, s, rng.integers(100, 150, 37).astype(np.uint8), np.array(0.03125, np.float32),
                np.array(-5, np.int8), rng.uniform(0.005, 0.5, 5).astype(np.float32),
                rng.integers(-20, 20, 5).astype(np.int8), acc]
    return make


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_quantize_dequantize_requantize_bit_exact(target):
    _compare(_elementwise_graph(), _elementwise_inputs(np.random.default_rng(0)), _target(target), (1, 3, 17))


def _gemm_graph(a_dt):
    """Integer matmuls and convolutions over a_dt activations (the graph's outputs)."""
    b = GraphBuilder(f"q_gemm_{a_dt}")
    a = b.input("a", TensorType(["N", 37], a_dt))
    a3 = b.input("a3", TensorType(["N", 3, 37], a_dt))
    w, wc = b.input("w", TensorType([37, 45], "i8")), b.input("wc", TensorType([3, 3, 4, 19], "i8"))
    azp, bzc = b.input("azp", TensorType([], a_dt)), b.input("bzc", TensorType([45], "i8"))
    x = b.input("x", TensorType(["N", 9, 7, 4], a_dt))
    xg = b.input("xg", TensorType(["N", 6, 5, 6], a_dt))
    wg, wzg = b.input("wg", TensorType([2, 3, 2, 9], "i8")), b.input("wzg", TensorType([9], "i8"))
    bz0 = b.constant(np.array(-7, np.int8))
    outs = [b.matmul_integer(a, w, azp, bzc), b.matmul_integer(a3, w, azp, bz0),
            b.conv2d_integer(x, wc, azp, bz0, padding="same", strides=(2, 1)),
            b.conv2d_integer(x, wc, azp, b.constant(np.array(0, np.int8)), dilations=(2, 1)),
            b.conv2d_integer(xg, wg, azp, wzg, groups=3, padding="same")]
    return b, outs


def _gemm_inputs(rng, a_dt):
    lo, hi = (-128, 128) if a_dt == "i8" else (0, 256)
    dt = np.int8 if a_dt == "i8" else np.uint8
    ints = lambda shape, l=lo, h=hi, d=dt: rng.integers(l, h, shape).astype(d)

    def make(n):
        return [ints((n, 37)), ints((n, 3, 37)), ints((37, 45), -128, 128, np.int8),
                ints((3, 3, 4, 19), -128, 128, np.int8), np.array(lo + 77, dt), ints((45,), -128, 128, np.int8),
                ints((n, 9, 7, 4)), ints((n, 6, 5, 6)), ints((2, 3, 2, 9), -128, 128, np.int8),
                ints((9,), -9, 9, np.int8)]
    return make


def _both_dtypes_graph():
    """u8 and i8 activations in one graph (one compile): the i8 graph's inputs follow the u8 one's."""
    bu, outs_u = _gemm_graph("u8")
    bi, outs_i = _gemm_graph("i8")
    b = GraphBuilder("q_gemm")
    env = {}
    for g, outs in ((bu, outs_u), (bi, outs_i)):
        built = g.build(outs)
        for v in built.inputs:
            env[v] = b.input(f"{g.name}_{v.name}", v.type)
        for node in built.nodes:
            out = b.op(node.op, *[env[v] for v in node.inputs], **node.attrs)
            env[node.outputs[0]] = out
    return b.build([env[v] for v in outs_u + outs_i])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_integer_matmul_and_conv_bit_exact(target):
    t = _target(target)
    make_u, make_i = (_gemm_inputs(np.random.default_rng(1), dt) for dt in ("u8", "i8"))
    # batch 1 (and 3 on VNNI) takes the direct (unpacked B) path, 17 and 40 the packed one
    _compare(_both_dtypes_graph(), lambda n: make_u(n) + make_i(n), t, (1, 3, 17, 40))


def test_targets_pick_the_expected_paths():
    host = host_target()
    assert int8_isa(host.without("avx512f").features).name == "avx2"
    assert int8_isa(host.without("avx512f", "avx2").features).name == "generic"
    if host.has("avx512vnni"):
        assert int8_isa(host.features).name == "vnni"


def _requantize_chain_graph():
    """matmul_integer + i32 bias + requantize(relu), conv2d_integer + requantize, and two that must
    not fuse: a requantize along a non-last axis, and an accumulator that is also a graph output."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("q_epilogues")
    x, xc = b.input("x", TensorType(["N", 37], "u8")), b.input("xc", TensorType(["N", 6, 5, 3], "i8"))
    w = b.param("w", rng.integers(-127, 128, (37, 45)).astype(np.int8))
    bias = b.param("bias", rng.integers(-3000, 3000, 45).astype(np.int32))
    zp_u, zp_i = b.constant(np.array(128, np.uint8)), b.constant(np.array(-128, np.int8))
    acc = b.matmul_integer(x, w, zp_u, b.constant(rng.integers(-5, 5, 45).astype(np.int8)))
    mult = b.constant(rng.uniform(1e-4, 1e-3, 45).astype(np.float32))
    dense = b.requantize(b.add(acc, bias), mult, zp_i, relu=True)
    wc = b.param("wc", rng.integers(-127, 128, (3, 3, 3, 7)).astype(np.int8))
    conv = b.requantize(b.conv2d_integer(xc, wc, b.constant(np.array(-2, np.int8)), b.constant(np.array(0, np.int8)),
                                         padding="same"), b.constant(np.array(0.002, np.float32)), zp_u)
    acc2 = b.matmul_integer(x, w, zp_u, b.constant(np.array(3, np.int8)))
    rows = b.requantize(acc2, b.input("row_scale", TensorType(["N"])), zp_i, axis=0)
    shared = b.matmul_integer(x, w, zp_u, b.constant(np.array(1, np.int8)))
    return b.build([dense, conv, rows, shared, b.requantize(shared, mult, zp_i)])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fused_bias_requantize_epilogue_runs_in_the_int8_kernel(target):
    from kcompile.ir import parse_graph, print_graph, verify
    from kcompile.passes.fusion import fuse, fused_nodes
    g = _requantize_chain_graph()
    fused = fuse(g)
    verify(fused)
    assert print_graph(parse_graph(print_graph(fused))) == print_graph(fused)
    kernels = [(n.attrs["body"].nodes[0].op, n.attrs["bias"], n.attrs["activation"], n.attrs["in_kernel"])
               for n in fused_nodes(fused)]
    assert kernels == [("matmul_integer", 4, "requantize", 2), ("conv2d_integer", -1, "requantize", 1)]
    assert sum(n.op == "requantize" for n in fused.nodes) == 2       # the two that cannot fuse stay nodes
    rng = np.random.default_rng(4)
    _compare(g, lambda n: [rng.integers(0, 256, (n, 37)).astype(np.uint8),
                           rng.integers(-128, 128, (n, 6, 5, 3)).astype(np.int8),
                           rng.uniform(1e-4, 1e-3, n).astype(np.float32)], _target(target), (1, 3, 17))


def _packing_paths_graph():
    """The A-packing variants: a long row (K > UNROLL_BYTES: rolled copy loop), one input channel with
    no tap in the padding (unrolled, unchecked taps; a one-vector tile for 16 columns), a window of
    more than UNROLL_TAPS taps (rolled tap loop) with padding, and 8-bit max pooling with padding."""
    rng = np.random.default_rng(5)
    b = GraphBuilder("q_paths")
    x = b.input("x", TensorType(["N", 700], "i8"))
    img = b.input("img", TensorType(["N", 12, 11, 1], "u8"))
    x8 = b.input("x8", TensorType(["N", 9, 10, 5], "i8"))
    zp_i, zp_u = b.constant(np.array(-7, np.int8)), b.constant(np.array(131, np.uint8))
    w = b.param("w", rng.integers(-127, 128, (700, 21)).astype(np.int8))
    wc = b.param("wc", rng.integers(-127, 128, (3, 3, 1, 16)).astype(np.int8))
    wbig = b.param("wbig", rng.integers(-127, 128, (9, 9, 5, 3)).astype(np.int8))
    bz = b.constant(rng.integers(-4, 4, 16).astype(np.int8))
    outs = [b.matmul_integer(x, w, zp_i, b.constant(np.array(2, np.int8))),
            b.conv2d_integer(img, wc, zp_u, bz),
            b.conv2d_integer(x8, wbig, zp_i, b.constant(np.array(0, np.int8)), padding="same"),
            b.max_pool2d(x8, pool_size=[3, 2], strides=[2, 2], padding="same"),
            b.max_pool2d(img, pool_size=[2, 2], strides=[2, 2])]
    return b.build(outs)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_packing_paths_and_int8_max_pool_bit_exact(target):
    rng = np.random.default_rng(6)
    _compare(_packing_paths_graph(), lambda n: [rng.integers(-128, 128, (n, 700)).astype(np.int8),
                                                rng.integers(0, 256, (n, 12, 11, 1)).astype(np.uint8),
                                                rng.integers(-128, 128, (n, 9, 10, 5)).astype(np.int8)],
             _target(target), (1, 5, 17))
