"""Sparse int8 (sparse_qmatmul): the kernel equals the reference bit for bit on random patterns, odd sizes,
u8 and i8 inputs, every epilogue, batch 1 to several thread-pool tasks, on the host's path (vpermi2b, vpdpbusd)
and the forced AVX2 path (gathers); the sparsify pass's choice on quantized graphs; and a model pruned
with kc.pruning and quantized, compiled to artifacts (compact weights, set_weights kept to the pattern)."""
import ctypes
import json

import numpy as np
import pytest
from llvmlite import ir

import kcompile as kc
from kcompile.compiler.artifact import write_artifact
from kcompile.compiler.jit import compile_graph
from kcompile.compiler.kernels.int8_microkernel import Requantize, StoreI32
from kcompile.compiler.kernels.sparse_int8 import BLOCK, sparse_qmatmul_function
from kcompile.compiler.kernels.standalone import JitModule, host_features
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType, parse_graph, print_graph
from kcompile.ir.ops.quant import _requantize_ref
from kcompile.ir.ops.sparse import PAD, from_dense_windows
from kcompile.passes.sparsify import format_sparsity, sparsify
from kcompile.runtime import load
from kcompile.runtime.reference import run

AVX2 = ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f")
NP8 = {"u8": np.uint8, "i8": np.int8}


def pruned_int8(rng, k, n, density):
    return (rng.integers(-128, 128, (k, n)) * (rng.random((k, n)) < density)).astype(np.int8)


def _call(jm, name, arrays, rows, nthreads=2):
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arrays)), ctypes.c_int64, ctypes.c_int64)
    proto(jm.address(name))(*[a.ctypes.data for a in arrays], rows, nthreads)


@pytest.mark.parametrize("cpu,features", [AVX2, (None, None)], ids=["avx2", "host"])
def test_kernel_bit_exact_on_each_path(cpu, features):
    """Odd K and N (partial windows and panels), empty rows/columns, no zeros, |sum| near 2^31 / 2^24;
    i32 results and requantize epilogues (bias or not, per column or per tensor, relu, i8/u8).
    Each layout gets two of the three epilogues in rotation, so every layout and every epilogue
    is covered on each path with two thirds of the LLVM work (each kernel is ~400 kB of IR on AVX2)."""
    host = host_features()
    if features and "+avx2" not in host.split(","):
        pytest.skip("this CPU cannot run AVX2 code")
    rng = np.random.default_rng(11)
    empty = pruned_int8(rng, 70, 40, 0.2)
    empty[::5], empty[:, [0, 17, 39]] = 0, 0
    kernels = [(pruned_int8(rng, 37, 21, 0.2), "u8"), (empty, "i8"), (pruned_int8(rng, 5, 3, 0.6), "u8"),
               (pruned_int8(rng, 64, 32, 1.0), "i8"), (np.full((700, 3), -128, np.int8), "u8"),
               (np.zeros((9, 17), np.int8), "i8")]
    outs = [StoreI32(), Requantize("i8", True, True, True), Requantize("u8", False, False, False)]
    epilogues = [(outs[i % 3], outs[(i + 1) % 3]) for i in range(len(kernels))]
    mod, names = ir.Module("sparse_int8"), []
    for (w, dt), pair in zip(kernels, epilogues):
        for out in pair:
            fn = sparse_qmatmul_function(mod, dt, *w.shape, BLOCK, out, features or host)
            fn.linkage = "external"
            names.append(fn.name)
    jm = JitModule(mod, cpu=cpu, features=features)
    it = iter(names)
    for (w, dt), pair in zip(kernels, epilogues):
        k, n = w.shape
        values, index, offsets = from_dense_windows(w, BLOCK)
        values[index == PAD] = 7    # an empty slot counts zero whatever value it holds
        lo, hi = (0, 256) if dt == "u8" else (-128, 128)
        for out in pair:
            name = next(it)
            for rows in (1, 2, 9, 17, 70):   # groups of 8 rows and single rows; 70: two tasks
                a = rng.integers(lo, hi, (rows, k)).astype(NP8[dt])
                azp = np.array(rng.integers(lo, hi), NP8[dt])
                if w.shape == (700, 3):
                    a[:], azp = 255, np.array(0, np.uint8)    # |sum| = 255 * 128 * 700 > 2^24
                acc = ((a.astype(np.int64) - azp) @ w.astype(np.int64)).astype(np.int32)
                extra, want = [], acc
                if isinstance(out, Requantize):
                    bias = rng.integers(-3000, 3000, n).astype(np.int32)
                    mult = (rng.uniform(1e-4, 1e-2, n) if out.per_col else np.array([3e-3])).astype(np.float32)
                    zp = np.array(rng.integers(-20, 20) if out.out_dtype == "i8" else rng.integers(0, 255),
                                  NP8[out.out_dtype])
                    extra = ([bias] if out.bias else []) + [mult, zp]
                    want = _requantize_ref([acc + bias if out.bias else acc, mult if out.per_col else mult[0], zp],
                                           {"axis": -1, "relu": out.relu}, None)[0]
                y = np.zeros((rows, n), want.dtype)
                _call(jm, name, [a, values, index, offsets, azp, y] + extra, rows)
                np.testing.assert_array_equal(y, want, err_msg=f"{w.shape} {dt} {out.ident} rows {rows}")


def quantized_mlp(seed=0, sparsity=0.9, inputs=96, hidden=40, prune_with_keras_api=False):
    """A Dense(hidden, relu) -> Dense(7) MLP pruned (NumPy or kc.pruning), quantized: (model, graph, data)."""
    rng = np.random.default_rng(seed)
    kc.utils.set_random_seed(seed)
    model = kc.Sequential([kc.Input((inputs,)), kc.layers.Dense(hidden, activation="relu", name="hidden"),
                           kc.layers.Dense(7, name="logits")])
    x = rng.uniform(0, 1, (64, inputs)).astype(np.float32)
    if prune_with_keras_api:
        P = kc.pruning
        pruned = P.prune_low_magnitude(model, pruning_schedule=P.ConstantSparsity(sparsity, begin_step=0, frequency=1))
        pruned.compile(optimizer="adam", loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True))
        pruned.fit(x, np.arange(64) % 7, batch_size=32, epochs=1, verbose=0, callbacks=[P.UpdatePruningStep()])
        model = P.strip_pruning(pruned)
    else:
        ws = model.get_weights()
        for i in (0, 2):
            ws[i][np.abs(ws[i]) < np.quantile(np.abs(ws[i]), sparsity)] = 0
        model.set_weights(ws)
    q = kc.quantization.quantize(model, calibration_data=x)
    return q, q.forward_graph(), x


def test_sparsify_makes_sparse_qmatmul_that_means_the_same():
    q, g, x = quantized_mlp()
    s = sparsify(g, mode="always")
    ops = [n.op for n in s.nodes]
    assert ops.count("sparse_qmatmul") == 2 and "matmul_integer" not in ops
    np.testing.assert_array_equal(run(s, [x])[0], run(g, [x])[0])
    d = {d.param: d for d in s.meta["sparsity"]}
    assert all(v.int8 and v.sparse and v.layout == "windows" and v.block == BLOCK for v in d.values())
    line = format_sparsity(s)
    assert "hidden/kernel [96x40]: sparse int8, density 0.1" in line and "est. " in line
    text = print_graph(s)
    assert print_graph(parse_graph(text)) == text and "sparse_qmatmul(" in text
    # auto follows the cost model: sparse only where estimated >= 1.2x at 1 and 64 rows
    auto = sparsify(g, mode="auto", int8_permute=True)
    for dec in auto.meta["sparsity"]:
        assert dec.sparse == (min(dec.speedup) >= 1.2)
    # without vpermi2b + vpdpbusd (AVX2) every step gathers: the dense int8 GEMM is kept
    assert not any(dec.sparse for dec in sparsify(g, mode="auto", int8_permute=False).meta["sparsity"])


def test_nonzero_weight_zero_point_is_not_eligible():
    rng = np.random.default_rng(3)
    b = GraphBuilder("zp")
    a = b.input("a", TensorType(["N", 33], "u8"))
    w = b.param("w", pruned_int8(rng, 33, 9, 0.1))
    y = b.matmul_integer(a, w, b.constant(np.array(3, np.uint8)), b.constant(np.array(1, np.int8)))
    assert sparsify(b.build([y]), mode="always").meta["sparsity"] == ()


def test_forced_avx2_compile_matches_reference():
    _, g, x = quantized_mlp(seed=1, inputs=75, hidden=33)
    s = sparsify(g, mode="always")
    fn = compile_graph(s, target=host_target().without("avx512f"))
    for rows in (1, 13):
        np.testing.assert_array_equal(fn([x[:rows]])[0], run(g, [x[:rows]])[0])


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    q, g, x = quantized_mlp(seed=2, inputs=130, hidden=48, prune_with_keras_api=True)
    root = tmp_path_factory.mktemp("sparse_int8_art")
    return g, x, write_artifact(g, root / "sparse", "qmlp", sparse="always"), \
        write_artifact(g, root / "dense", "qmlp", sparse="never")


def test_pruned_quantized_artifact_equals_reference(artifacts):
    g, x, sparse, dense = artifacts
    manifest = json.loads((sparse / "manifest.json").read_text())
    assert sorted(s["name"] for s in manifest["sparse_weights"]) == ["hidden/kernel", "logits/kernel"]
    assert all(s["dtype"] == "i8" and s["block"] == list(BLOCK) for s in manifest["sparse_weights"])
    # int8 nonzeros, u8 offsets: smaller than the dense int8 kernel and its packed copy
    assert (dense / "weights.bin").stat().st_size > 2 * (sparse / "weights.bin").stat().st_size
    m, d = load(sparse), load(dense)
    for rows in (1, 64):
        want = run(g, [x[:rows]])[0]
        np.testing.assert_array_equal(m(x[:rows]), want)
        np.testing.assert_array_equal(d(x[:rows]), want)
    dense_weights = dict(zip(d.weight_names, d.get_weights()))    # (plus the dense GEMM's packed copies)
    for name, a in zip(m.weight_names, m.get_weights()):
        np.testing.assert_array_equal(a, dense_weights[name])


def test_set_weights_keeps_the_int8_pattern(artifacts):
    g, x, sparse, _ = artifacts
    m = load(sparse)
    names = m.weight_names
    k = names.index("hidden/kernel")
    w = m.get_weights()[k]
    assert w.dtype == np.int8 and (w == 0).mean() > 0.8
    new = np.where(w != 0, -(w // 2), 0).astype(np.int8)
    m.set_weights({"hidden/kernel": new})
    np.testing.assert_array_equal(m(x[:5]), run(g, [x[:5]], {"hidden/kernel": new})[0])
    bad = new.copy()
    i, j = np.argwhere(w == 0)[0]
    bad[i, j] = 5
    with pytest.raises(ValueError, match=r"parameter 'hidden/kernel' has 1 nonzero weight\(s\) outside the "
                                         r"sparsity pattern"):
        m.set_weights({"hidden/kernel": bad})


def test_pruned_quantized_convolution_is_exact():
    """conv2d_integer (same padding, a stride) through 8-bit patches padded with the input zero point."""
    rng = np.random.default_rng(6)
    kc.utils.set_random_seed(6)
    model = kc.Sequential([kc.Input((9, 8, 3)), kc.layers.Conv2D(20, 3, strides=(2, 1), padding="same",
                                                                  activation="relu", name="conv"),
                           kc.layers.Conv2D(12, 2, name="conv_1"), kc.layers.Flatten(), kc.layers.Dense(5, name="head")])
    ws = model.get_weights()
    for i in (0, 2):
        ws[i][np.abs(ws[i]) < np.quantile(np.abs(ws[i]), 0.85)] = 0
    model.set_weights(ws)
    x = rng.uniform(0, 1, (16, 9, 8, 3)).astype(np.float32)
    g = kc.quantization.quantize(model, calibration_data=x).forward_graph()
    s = sparsify(g, mode="always")
    ops = [n.op for n in s.nodes]
    assert ops.count("patches") == 2 and "conv2d_integer" not in ops and ops.count("sparse_qmatmul") == 3
    assert any(n.op == "patches" and n.attrs["pad_value"] != 0 for n in s.nodes)   # same padding: the zero point
    assert "conv/kernel [27x20]: sparse int8" in format_sparsity(s)
    want = run(g, [x])[0]
    np.testing.assert_array_equal(run(s, [x])[0], want)
    for target in (None, host_target().without("avx512f")):
        fn = compile_graph(s, target=target)
        for rows in (1, 16):
            np.testing.assert_array_equal(fn([x[:rows]])[0], want[:rows])
