"""NaN and ±inf propagate through every op as in NumPy, in the reference interpreter and natively.

Walks the op registry with the per-op cases of tests/ir/ir_op_cases.py: for each op's first case
with a float operand, each float operand in turn gets NaN, +inf or -inf at two places. Then
  - native == reference: the same NaN positions, the same infinities, the other values close;
  - reference == NumPy: the case's independent oracle, or where that oracle is not NaN-aware (it
    was written for finite data) the NumPy function itself (NUMPY below).
One graph holds a node of every op, so the whole walk compiles once.
"""
import math
import os
import sys
import warnings

import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.ir import OPS, GraphBuilder, TensorType
from kcompile.runtime.reference import run

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ir"))
from ir_op_cases import CASES  # noqa: E402
from ir_util import concretize  # noqa: E402

SPECIALS = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf}
# ops with no float operand to put a NaN into (integer, boolean and constant ops)
NO_FLOAT_OPERAND = {"constant", "conv2d_integer", "logical_and", "logical_not", "logical_or", "matmul_integer",
                    "one_hot", "sparse_qmatmul"}
PARAM_OPERANDS = {"sparse_matmul": (2, 3)}   # its index arrays must be parameters to compile
_erf = np.vectorize(math.erf, otypes=[np.float32])

# NumPy's own semantics where the case's oracle was written for finite data (int(), math.cos, a
# comparison-based max): NaN must behave as NumPy's function makes it behave.
NUMPY = {
    "maximum": lambda xs, a: [np.maximum(*xs)], "minimum": lambda xs, a: [np.minimum(*xs)],
    "relu": lambda xs, a: [np.maximum(xs[0], 0)], "sign": lambda xs, a: [np.sign(xs[0])],
    "reduce_max": lambda xs, a: [np.max(xs[0], axis=a["axes"])],
    "reduce_min": lambda xs, a: [np.min(xs[0], axis=a["axes"])],
    "argmax": lambda xs, a: [np.argmax(xs[0], axis=-1)], "argmin": lambda xs, a: [np.argmin(xs[0], axis=-1)],
    "floor": lambda xs, a: [np.floor(xs[0])], "ceil": lambda xs, a: [np.ceil(xs[0])],
    "round": lambda xs, a: [np.round(xs[0])],
    "cos": lambda xs, a: [np.cos(xs[0])], "sin": lambda xs, a: [np.sin(xs[0])], "log": lambda xs, a: [np.log(xs[0])],
    "log1p": lambda xs, a: [np.log1p(xs[0])], "sqrt": lambda xs, a: [np.sqrt(xs[0])],
    "rsqrt": lambda xs, a: [1 / np.sqrt(xs[0])],
    "erf": lambda xs, a: [_erf(xs[0])],          # NumPy has no erf: C99's (math.erf): erf(±inf) = ±1
    "cast": lambda xs, a: [xs[0].astype(np.int32)],
    "top_k": lambda xs, a: _top_k_nan_largest(xs[0], a["k"]),
}


def _top_k_nan_largest(x, k):
    """JAX's, torch's and onnxruntime's TopK order: NaN above every number, ties (NaNs too) by index."""
    rows = x.reshape(-1, x.shape[-1])
    rank = [sorted(range(len(r)), key=lambda i: (not np.isnan(r[i]), 0.0 if np.isnan(r[i]) else -r[i], i))[:k]
            for r in rows]
    idx = np.array(rank, np.int32).reshape(x.shape[:-1] + (k,))
    return [np.take_along_axis(x, idx, axis=-1), idx]
# float -> int of NaN or ±inf has no defined value (C: undefined, LLVM's fptosi: poison, NumPy:
# a RuntimeWarning and whatever the CPU gives); only the other elements are compared.
UNDEFINED_AT_SPECIALS = {"cast"}
# Where NaN semantics differ by design (compared natively against the reference only):
NOT_NUMPY = {
    # a window whose maximum is NaN passes its gradient to no position (NaN == NaN is false), as
    # TF's MaxPoolGrad does; the forward max_pool is NaN there, so the loss is NaN and
    # TerminateOnNaN stops training before this gradient is applied
    "max_pool2d_grad": "gradient of a NaN window goes nowhere",
    # NaN has no integer code: the reference and native code keep NaN through round/clip (Keras'
    # fake_quant passes NaN through too); the oracle quantizes with int()
    "fake_quantize": "NaN passes through quantization",
    # the reference contracts with dense (out, in) weight matrices (as jax.image.resize, Keras' JAX
    # backend, does), so 0 * NaN carries a NaN to its whole output row and column; native code and
    # a NumPy gather of the taps keep it at the outputs whose taps include it (see NAN_SET)
    "resize": "NaN spreads along rows and columns in the reference",
    # a NaN/inf sampling coordinate names no pixel: the oracle's math.floor cannot take one
    ("affine_transform", 1): "no pixel at a non-finite coordinate",
    # the reference convolves the stride-dilated, padded input with the flipped kernel (as Keras's
    # JAX backend, conv_general_dilated with lhs_dilation): the inserted zeros meet NaN/inf weights
    # (0 * inf = NaN) at outputs the oracle's scatter of each input pixel never touches
    "conv2d_transpose": "inserted zeros meet NaN/inf in the dilated convolution",
}
# Where native NaNs cover more or fewer positions than the reference's, by design; all other
# positions agree.
NAN_SET = {
    # the input-gradient kernel is a convolution over zero-padded dy: a NaN/inf *weight* meets the
    # padding's zeros, and IEEE 0 * inf = NaN, so native NaNs are a superset of the reference's
    ("conv2d_input_grad", 1): "superset",
    # the sparse kernel multiplies each stored entry on its own and never its structural zeros (as
    # scipy.sparse), the reference the densified kernel: inf * 0 = NaN only there, and a repeated
    # entry (the case has some) gives inf*a + inf*b = NaN only natively where a + b > 0; so
    # either side may have NaNs the other has not
    ("sparse_matmul", 0): "either",
    ("resize", 0): "either",   # see NOT_NUMPY["resize"]; and natively a zero-weight tap makes 0 * inf = NaN
    # natively the conv input-gradient kernel on the adjoint geometry: as for conv2d_input_grad, a NaN/inf
    # weight meets the zero padding (0 * inf = NaN) at outputs the reference's convolution leaves finite
    ("conv2d_transpose", 1): "superset",
}


def _first_float_case(op):
    return next((c for c in CASES if c.op == op and any(a.dtype.kind == "f" for a in c.arrays)), None)


def test_every_op_is_walked_or_has_no_float_operand():
    assert {op for op in OPS if _first_float_case(op) is None} == NO_FLOAT_OPERAND
    named = set(NUMPY) | UNDEFINED_AT_SPECIALS | {k if isinstance(k, str) else k[0] for k in NOT_NUMPY}
    assert named | {op for op, _ in NAN_SET} <= set(OPS)


def _inject(a, value):
    a = a.copy()
    flat = a.reshape(-1)
    flat[[0, flat.size // 2]] = value
    return a


@pytest.fixture(scope="module")
def walk():
    """One graph with a node per op (its operands as inputs), compiled once."""
    b = GraphBuilder("nan_walk")
    cases, outputs, params = [], [], {}
    for op in sorted(set(OPS) - NO_FLOAT_OPERAND):
        case = _first_float_case(op)
        operands = []
        for k, a in enumerate(case.arrays):
            if k in PARAM_OPERANDS.get(op, ()):
                operands.append(b.param(f"{op}/p{k}", a))
            else:
                operands.append(b.input(f"{op}_{k}", TensorType(a.shape, a.dtype)))
        out = b.op(op, *operands, **concretize(case.attrs, case.arrays))
        outs = list(out) if isinstance(out, tuple) else [out]
        cases.append((op, case, len(outputs), len(outs)))
        outputs += outs
    graph = b.build(outputs)
    return graph, compile_graph(graph), cases


def _inputs(cases, special, k):
    feeds, injected = [], set()
    for op, case, _, _ in cases:
        for j, a in enumerate(case.arrays):
            if j in PARAM_OPERANDS.get(op, ()):
                continue
            hit = j == k and a.dtype.kind == "f"
            feeds.append(_inject(a, SPECIALS[special]) if hit else a)
            injected |= {op} if hit else set()
    return feeds, injected


def _assert_same(got, want, what, nan_set=None, undefined=False):
    assert got.shape == want.shape and got.dtype == want.dtype, what
    if undefined:   # the elements computed from the special values (the same positions: elementwise)
        got, want = _inject(got, 0), _inject(want, 0)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    if nan_set:   # compare the positions both agree are numbers, after checking the inclusion
        outside = {"superset": nan_w & ~nan_g, "subset": nan_g & ~nan_w, "either": np.zeros_like(nan_g)}[nan_set]
        assert not outside.any(), f"{what}: native NaNs are not a {nan_set} of the reference's"
        either = nan_g | nan_w
        got, want, nan_g, nan_w = np.where(either, 0, got), np.where(either, 0, want), either, either
    assert (nan_g == nan_w).all(), f"{what}: NaN at {np.argwhere(nan_g != nan_w)[:4].tolist()} differs"
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{what}: +inf positions")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{what}: -inf positions")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-5, err_msg=what)


def _reference_runs(walk, special):
    """(k, feeds, injected ops, reference outputs) for each operand index k carrying the special value."""
    graph, _, cases = walk
    for k in range(max(len(c.arrays) for _, c, _, _ in cases)):
        feeds, injected = _inputs(cases, special, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield k, feeds, injected, run(graph, feeds)


@pytest.mark.parametrize("special", sorted(SPECIALS))
def test_native_propagates_nan_and_inf_like_the_reference(walk, special):
    _, fn, cases = walk
    for k, feeds, injected, want in _reference_runs(walk, special):
        got = fn(feeds)
        for op, case, first, count in cases:
            if op in injected:
                for i in range(first, first + count):
                    _assert_same(got[i], want[i], f"{op} operand {k} = {special}, output {i - first}",
                                 nan_set=NAN_SET.get((op, k)), undefined=op in UNDEFINED_AT_SPECIALS)


@pytest.mark.parametrize("special", sorted(SPECIALS))
def test_reference_propagates_nan_and_inf_like_numpy(walk, special):
    _, _, cases = walk
    for k, _, injected, got in _reference_runs(walk, special):
        for op, case, first, count in cases:
            if op not in injected or op in NOT_NUMPY or (op, k) in NOT_NUMPY:
                continue
            arrays = [_inject(a, SPECIALS[special]) if j == k else a for j, a in enumerate(case.arrays)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = (NUMPY.get(op) or case.oracle)(arrays, case.attrs)
            for i, w in enumerate(want):
                _assert_same(got[first + i], np.asarray(w).astype(got[first + i].dtype),
                             f"{op} operand {k} = {special}, output {i}", undefined=op in UNDEFINED_AT_SPECIALS)



def test_top_k_ranks_nan_largest_natively_in_the_reference_and_in_onnxruntime():
    """NaN ranks above every number, NaNs in index order, as JAX, torch and onnxruntime's TopK (natively
    a NaN once took the first slot and scrambled the rest of its row)."""
    b = GraphBuilder("top_k_nan")
    x = b.input("x", TensorType([3, 6]))
    graph = b.build(list(b.op("top_k", x, k=4)))
    data = np.array([[1.0, np.nan, 3.0, 0.5, 2.0, -1.0], [np.nan, 1.0, np.nan, 3.0, np.inf, 2.0],
                     [np.nan, np.nan, np.nan, 1.0, np.nan, np.nan]], np.float32)
    got, want = compile_graph(graph)([data]), run(graph, [data])
    np.testing.assert_array_equal(want[1], [[1, 2, 4, 0], [0, 2, 4, 3], [0, 1, 2, 4]])
    for g, w in zip(got, want):
        _assert_same(g, w, "top_k with NaN")
    ort = pytest.importorskip("onnxruntime")
    from kcompile.compiler.onnx_export import to_onnx_model
    session = ort.InferenceSession(to_onnx_model(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"x": data})
    np.testing.assert_array_equal(onnx_out[1], want[1])
