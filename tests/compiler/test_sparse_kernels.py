"""Sparse matmul kernels against the reference interpreter: every block structure and the windows
layout, odd sizes, empty rows and columns, 0% and 100% density, batch 1 (GEMV rows), 17 (a tile plus
a row; windows: two groups of 8 rows plus one), 21 and 40 (tiles plus a zero-padded partial tile);
the AVX2 path (windows: the gather fallback) forced on hosts with AVX-512."""
import ctypes

import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.jit import compile_graph
from kcompile.compiler.kernels.sparse import SparseSpec, sparse_matmul_function
from kcompile.compiler.kernels.standalone import JitModule, host_features
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.ops.sparse import from_dense, from_dense_windows
from kcompile.runtime.reference import run

AVX2 = ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f")
WINDOWS = (32, 16)


def encode(w, block):
    """(values, index, offsets) of w and the sparse_matmul attrs: `block`, or "windows" for that layout."""
    if block == "windows":
        return from_dense_windows(w, WINDOWS), {"block": WINDOWS, "layout": "windows", "n": w.shape[1]}
    return from_dense(w, block), {"block": block}


def spec(w, block, bias, relu, features, dtype="f32"):
    layout = {"layout": "windows"} if block == "windows" else {}
    return SparseSpec(dtype, *w.shape, WINDOWS if block == "windows" else block, bias, relu, features, **layout)


def pruned(rng, k, n, block=(1, 1), density=0.2, empty_rows=(), empty_cols=()):
    """A random kernel with blocks of `block` kept at `density`, some whole rows/columns zero."""
    bk, bn = block
    keep = rng.random((k // bk, n // bn)) < density
    w = rng.uniform(-1, 1, (k, n)).astype(np.float32) * np.repeat(np.repeat(keep, bk, 0), bn, 1)
    w[list(empty_rows), :] = 0
    w[:, list(empty_cols)] = 0
    return w


def two_of_four(rng, k, n):
    """2:4 along the contraction: in every group of 4 inputs, the 2 largest weights of each output stay."""
    w = rng.uniform(-1, 1, (k // 4, 4, n)).astype(np.float32)
    order = np.argsort(-np.abs(w), axis=1)
    mask = np.zeros_like(w, bool)
    np.put_along_axis(mask, order[:, :2], True, axis=1)
    return (w * mask).reshape(k, n)


def kernels(rng):
    """name -> (dense kernel, block it is stored in), over odd sizes."""
    return {
        "unstructured": (pruned(rng, 37, 21, density=0.15), (1, 1)),
        "block1x8": (pruned(rng, 29, 24, (1, 8), 0.3), (1, 8)),
        "block1x16-wide": (pruned(rng, 19, 48, (1, 16), 0.4), (1, 16)),
        "block4x1": (pruned(rng, 36, 13, (4, 1), 0.3), (4, 1)),
        "block2x3": (pruned(rng, 22, 15, (2, 3), 0.5), (2, 3)),
        "two-of-four": (two_of_four(rng, 36, 11), (1, 1)),
        "empty-rows-cols": (pruned(rng, 31, 19, density=0.3, empty_rows=range(0, 31, 3), empty_cols=(0, 5, 18)),
                            (1, 1)),
        "all-zero": (np.zeros((23, 9), np.float32), (1, 1)),
        "all-zero-block": (np.zeros((16, 16), np.float32), (1, 8)),
        "no-zeros": (rng.uniform(-1, 1, (17, 7)).astype(np.float32), (1, 1)),
        "no-zeros-block": (rng.uniform(-1, 1, (12, 8)).astype(np.float32), (2, 4)),
        # windows: K and N not multiples of the window (32) and panel (16), smaller than both, empty ones
        "windows-unstructured": (pruned(rng, 37, 21, density=0.15), "windows"),
        "windows-empty": (pruned(rng, 70, 40, density=0.1, empty_rows=range(0, 70, 5), empty_cols=(0, 17, 39)),
                          "windows"),
        "windows-tiny": (pruned(rng, 5, 3, density=0.5), "windows"),
        "windows-all-zero": (np.zeros((23, 9), np.float32), "windows"),
        "windows-no-zeros": (rng.uniform(-1, 1, (64, 16)).astype(np.float32), "windows"),
    }


@pytest.fixture(scope="module")
def graphs():
    """One graph with a branch per kernel (one compile), as sparse_matmul and as the dense original."""
    rng = np.random.default_rng(7)
    cases = kernels(rng)
    biases = {name: rng.uniform(-1, 1, w.shape[1]).astype(np.float32) for name, (w, _) in cases.items()}
    outs = {}
    for form in ("dense", "sparse"):
        b = GraphBuilder(f"branches_{form}")
        ys = []
        for name, (w, block) in cases.items():
            x = b.input(f"x_{name.replace('-', '_')}", TensorType(["N", w.shape[0]]))
            bias = b.param(f"{name}/bias", biases[name])
            with b.location(name):
                if form == "dense":
                    y = b.matmul(x, b.param(f"{name}/kernel", w))
                else:
                    arrays, attrs = encode(w, block)
                    parts = [b.param(f"{name}/{p}", a) for p, a in zip(("v", "i", "o"), arrays)]
                    y = b.sparse_matmul(x, *parts, weight=f"{name}/kernel", **attrs)
                # bias + relu fuse into the kernel; an odd one out (3 branches) gets a tanh epilogue too
                y = b.relu(b.add(y, bias))
                ys.append(b.tanh(y) if name.startswith("block2") else y)
        outs[form] = b.build(ys)
    return outs


@pytest.mark.parametrize("batch", [1, 17, 21, 40])
def test_sparse_matches_reference_and_dense(graphs, batch):
    rng = np.random.default_rng(batch)
    inputs = [rng.uniform(-1, 1, (batch,) + v.type.shape[1:]).astype(np.float32) for v in graphs["sparse"].inputs]
    want = run(graphs["dense"], inputs)
    assert all(np.array_equal(s, d) for s, d in zip(run(graphs["sparse"], inputs), want))
    got = compile_graph(graphs["sparse"])(inputs)
    for g, w, name in zip(got, want, graphs["sparse"].output_names):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"{name} batch {batch}")


def _call(jm, name, arrays, rows, nthreads=1):
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arrays)), ctypes.c_int64, ctypes.c_int64)
    proto(jm.address(name))(*[a.ctypes.data for a in arrays], rows, nthreads)


@pytest.mark.parametrize("cpu,features", [AVX2, (None, None)], ids=["avx2", "host"])
def test_kernels_on_each_vector_width(cpu, features):
    """The column kernel (tiles of 8 or 16 rows, a partial tile, single rows), the block kernel
    (row tiles) and the windows kernel (permute on AVX-512 f32; gathers for AVX2 and f64), on two
    threads (tasks of 4 tiles of rows)."""
    host = host_features()
    if features and not all(f"+{f[1:]}" in host.split(",") for f in features.split(",") if f[0] == "+"):
        pytest.skip("this CPU cannot run AVX2 code")
    rng = np.random.default_rng(3)
    mod = ir.Module("sparse_targets")
    cases = [(pruned(rng, 37, 21, density=0.2), (1, 1), True, True),
             (pruned(rng, 36, 40, (4, 1), 0.3), (4, 1), False, True),
             (pruned(rng, 21, 48, (1, 16), 0.3), (1, 16), True, False),
             (pruned(rng, 20, 30, (2, 5), 0.4), (2, 5), True, True),
             (pruned(rng, 75, 35, density=0.2), "windows", True, True),
             (pruned(rng, 64, 32, density=0.3), "windows", False, False),
             (pruned(rng, 40, 18, density=0.3).astype(np.float64), "windows", True, False)]
    names = []
    for w, block, bias, relu in cases:
        dtype = "f64" if w.dtype == np.float64 else "f32"
        fn = sparse_matmul_function(mod, spec(w, block, bias, relu, features or host, dtype))
        fn.linkage = "external"
        names.append(fn.name)
    jm = JitModule(mod, cpu=cpu, features=features)
    for (w, block, bias, relu), name in zip(cases, names):
        bvec = rng.uniform(-1, 1, w.shape[1]).astype(w.dtype)
        for rows in (1, 2, 8, 13, 19, 35, 150):  # 150 rows: several thread-pool tasks, the last one short
            a = rng.uniform(-1, 1, (rows, w.shape[0])).astype(w.dtype)
            y = np.full((rows, w.shape[1]), np.nan, w.dtype)
            _call(jm, name, [a, *encode(w, block)[0], y] + ([bvec] if bias else []), rows, 2)
            want = a @ w + (bvec if bias else 0)
            np.testing.assert_allclose(y, np.maximum(want, 0) if relu else want, rtol=1e-5, atol=1e-5,
                                       err_msg=f"block {block} {dtype} rows {rows}")


def test_index_arrays_are_checked_before_native_code_reads_them():
    rng = np.random.default_rng(9)
    w = pruned(rng, 12, 8, density=0.4)
    values, index, offsets = from_dense(w, (1, 1))
    b = GraphBuilder("checked")
    x = b.input("x", TensorType(["N", 12]))
    y = b.sparse_matmul(x, b.param("v", values), b.param("i", index), b.param("o", offsets), block=(1, 1), weight="w")
    fn = compile_graph(b.build([y]))
    xs = rng.normal(size=(2, 12)).astype(np.float32)
    np.testing.assert_allclose(fn([xs])[0], xs @ w, rtol=1e-5, atol=1e-6)
    bad = index.copy()
    bad[0] = 12
    with pytest.raises(ValueError, match="sparse weight 'w': sparse_matmul index holds block row 12, outside \\[0, 12\\)"):
        fn([xs], {"i": bad})
    with pytest.raises(ValueError, match="offsets must rise from 0"):
        fn([xs], {"o": offsets[::-1].copy()})
    with pytest.raises(ValueError, match="block row -1"):
        run(b.build([y]), [xs], {"i": bad - 13})
    # index arrays that are graph inputs cannot be checked once: refused at compile time
    b = GraphBuilder("unchecked")
    x = b.input("x", TensorType(["N", 12]))
    y = b.sparse_matmul(x, b.param("v", values), b.input("i", TensorType(index.shape, "i32")), b.param("o", offsets),
                        block=(1, 1))
    with pytest.raises(NotImplementedError, match="only with its index and offsets as parameters"):
        compile_graph(b.build([y]))


def test_windows_index_arrays_are_checked():
    """A windows index outside its window (and not 255, an empty slot) or offsets of the wrong length
    are refused before native code runs."""
    rng = np.random.default_rng(10)
    w = pruned(rng, 40, 20, density=0.3)
    (values, index, offsets), attrs = encode(w, "windows")
    b = GraphBuilder("checked_windows")
    x = b.input("x", TensorType(["N", 40]))
    y = b.sparse_matmul(x, b.param("v", values), b.param("i", index), b.param("o", offsets), weight="w", **attrs)
    fn = compile_graph(b.build([y]))
    xs = rng.normal(size=(3, 40)).astype(np.float32)
    np.testing.assert_allclose(fn([xs])[0], xs @ w, rtol=1e-5, atol=1e-5)
    bad = index.copy()
    bad[np.flatnonzero(bad != 255)[0]] = 40
    with pytest.raises(ValueError, match="sparse weight 'w': sparse_matmul windows index holds 40, outside a window "
                                         "of 32 inputs"):
        fn([xs], {"i": bad})
    with pytest.raises(ValueError, match="windows offsets must rise from 0 to"):
        fn([xs], {"o": np.concatenate([offsets[:5][::-1], offsets[5:]])})
    swapped = offsets.copy()
    swapped[5] = swapped[6]   # an input order that repeats a row (and misses one)
    with pytest.raises(ValueError, match="windows input rows must be an order of 0..39"):
        fn([xs], {"o": swapped})
