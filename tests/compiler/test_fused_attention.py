"""The fuse-attention pass and the fused attention kernel (passes/fuse_attention.py, compiler/lower/attention.py):
softmax(Q K^T) V over [N, T, H, D] layouts natively vs the reference, at odd sizes (edge tiles, T past the
GEMM's row block, one-element heads), on the host's vector width and on AVX2 without AVX-512; the chain
stays unfused where another node reads an intermediate; a malformed attention body is refused by name."""
import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.compiler.kernels.attention_rows import row_blocks
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.errors import IRError
from kcompile.passes.fuse_attention import fuse_attention

from native_util import assert_native_matches, runnable_target

TARGETS = {"host": None, "avx2": host_target().without("avx512f")}
# (T, S, H, D, Dv): query length, key length, heads, key dim, value dim
# the row-block kernel (kernels/attention_rows.py): full MR-row blocks plus remainders of 4 and 1 rows
# (AVX-512's MR 12) or 5 = 4+1 (AVX2's 6), full column chunks plus a masked partial one, S and Dv
# exact multiples of the chunks (the bench's head shape, smaller), a head dim of 1
SIZES = [(7, 5, 3, 5, 3), (1, 1, 1, 1, 1), (33, 70, 2, 16, 40), (130, 20, 1, 3, 7),
         (29, 45, 2, 9, 37), (24, 64, 2, 16, 32), (13, 33, 1, 1, 17)]
SWAP = [0, 2, 1, 3]


def attention_graph(t, s, h, d, dv, expose_probs=False):
    b = GraphBuilder("attn")
    q = b.input("q", TensorType(("N", t, h, d)))
    k = b.input("k", TensorType(("N", s, h, d)))
    v = b.input("v", TensorType(("N", s, h, dv)))
    scores = b.matmul(b.transpose(q, perm=SWAP), b.transpose(k, perm=SWAP), transpose_b=True)
    probs = b.softmax(scores, axis=-1)
    y = b.transpose(b.matmul(probs, b.transpose(v, perm=SWAP)), perm=SWAP)
    return b.build([y, probs] if expose_probs else [y])


def inputs(rng, n, t, s, h, d, dv):
    return [rng.standard_normal(shape).astype(np.float32) * 2 for shape in ((n, t, h, d), (n, s, h, d), (n, s, h, dv))]


def fused_kinds(fn) -> list:
    return [n.attrs["kind"] for n in fn.compilation.planned["forward"].nodes if n.op == "fused"]


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_native_matches_reference(size, target):
    runnable_target(TARGETS, target)
    rng = np.random.default_rng(sum(size))
    fn = assert_native_matches(attention_graph(*size), lambda n: inputs(rng, n, *size), batches=(1, 3),
                               rtol=1e-4, atol=1e-5, target=TARGETS[target])
    assert fused_kinds(fn) == ["attention"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_large_scores_stay_finite(target):
    """Scores in the hundreds: each row's max is subtracted before exp (no overflow to inf/NaN)."""
    runnable_target(TARGETS, target)
    size = (17, 40, 2, 8, 20)
    rng = np.random.default_rng(5)
    fn = assert_native_matches(attention_graph(*size), lambda n: [a * 6 for a in inputs(rng, n, *size)],
                               batches=(2,), rtol=1e-4, atol=1e-4, target=TARGETS[target])
    assert np.isfinite(fn(inputs(rng, 2, *size))[0]).all()


def test_row_blocks_cover_every_row():
    for t in range(1, 40):
        for mr in (6, 12):
            full, rest = row_blocks(t, mr)
            assert full * mr + sum(rest) == t and all(r < mr and r & (r - 1) == 0 for r in rest)
            assert list(rest) == sorted(set(rest), reverse=True)


def test_two_threads_split_heads_and_items():
    size = (9, 11, 3, 4, 6)
    rng = np.random.default_rng(1)
    fn = compile_graph(attention_graph(*size))
    x = inputs(rng, 5, *size)
    np.testing.assert_allclose(fn(x, nthreads=2)[0], fn(x, nthreads=1)[0], rtol=1e-6, atol=1e-6)


def test_chain_read_elsewhere_stays_unfused():
    size = (7, 5, 3, 5, 3)
    rng = np.random.default_rng(2)
    fn = assert_native_matches(attention_graph(*size, expose_probs=True), lambda n: inputs(rng, n, *size),
                               batches=(2,), rtol=1e-4, atol=1e-5)
    assert "attention" not in fused_kinds(fn)


def test_pass_leaves_a_broadcast_head_axis_alone():
    b = GraphBuilder("bcast")
    q = b.input("q", TensorType(("N", 4, 2, 3)))
    k = b.input("k", TensorType(("N", 5, 1, 3)))      # one key head for two query heads
    v = b.input("v", TensorType(("N", 5, 1, 3)))
    s = b.softmax(b.matmul(b.transpose(q, perm=SWAP), b.transpose(k, perm=SWAP), transpose_b=True), axis=-1)
    g = b.build([b.transpose(b.matmul(s, b.transpose(v, perm=SWAP)), perm=SWAP)])
    assert fuse_attention(g) is g


def test_malformed_attention_body_is_refused():
    body = GraphBuilder("body")
    x = body.input("x", TensorType(("N", 4, 2, 3)))
    bad = body.build([body.transpose(body.relu(x), perm=SWAP)])
    outer = GraphBuilder("outer")
    xo = outer.input("x", TensorType(("N", 4, 2, 3)))
    with pytest.raises(IRError, match="fused attention body @body must be exactly"):
        outer.op("fused", xo, body=bad, kind="attention")
