"""prepack-int8: the packed weight layout, which weights get packed, and that a packed copy never goes
stale (another array passed, Variable.assign / set_weights on a quantized model), on both int8 paths."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.jit import compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes.int8_prepack import pack_weights, packed_name, parse_packed_name, prepack_int8
from kcompile.runtime import reference

from quant_helpers import convnet, images

TARGETS = {"host": None, "avx2": host_target().without("avx512f")}


def _naive_pack(w, group, nr, groups, elem=1):
    """The layout by its definition (passes/int8_prepack.py), one value at a time (int16 when elem is 2)."""
    b = w.reshape(-1, w.shape[-1]).astype(np.int64)
    k, cols = b.shape
    n = cols // groups
    panels, kg = -(-n // nr), -(-k // group)
    out = []
    for g in range(groups):
        for p in range(panels):
            for q in range(kg):
                for j in range(nr):
                    for t in range(group):
                        kk, c = q * group + t, p * nr + j
                        out.append(b[kk, g * n + c] if kk < k and c < n else 0)
    sums = [b[:, g * n + p * nr + j].sum() if p * nr + j < n else 0
            for g in range(groups) for p in range(panels) for j in range(nr)]
    values = np.array(out, np.int8) if elem == 1 else np.array(out, "<i2").view(np.int8)
    return np.concatenate([values, np.array(sums, np.int32).view(np.int8)])


@pytest.mark.parametrize("shape,group,nr,groups,elem", [((37, 45), 4, 32, 1, 1), ((3, 3, 1, 16), 2, 8, 1, 1),
                                                        ((2, 3, 2, 9), 4, 16, 3, 1), ((5, 7), 1, 8, 1, 1),
                                                        ((37, 45), 2, 16, 1, 2), ((2, 3, 2, 9), 2, 16, 3, 2)])
def test_pack_weights_matches_the_layout_definition(shape, group, nr, groups, elem):
    w = np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8)
    np.testing.assert_array_equal(pack_weights(w, group, nr, groups, elem), _naive_pack(w, group, nr, groups, elem))
    for window in (None, (3, 3, 1)):
        name = packed_name("dense/kernel", group, nr, groups, window, elem)
        assert parse_packed_name(name) == ("dense/kernel", group, nr, groups)
        assert ("s16" in name) == (elem == 2)
    assert parse_packed_name("dense/kernel") is None


def _graph(rng):
    b = GraphBuilder("prepacked")
    x = b.input("x", TensorType(["N", 37], "i8"))
    xin = b.input("w_in", TensorType([37, 20], "i8"))
    w = b.param("w", rng.integers(-127, 128, (37, 45)).astype(np.int8))
    zx, zw = b.constant(np.array(-3, np.int8)), b.constant(np.array(2, np.int8))
    return b.build([b.matmul_integer(x, w, zx, zw), b.matmul_integer(x, xin, zx, zw)])


def test_only_parameter_weights_not_updated_in_place_are_packed():
    g = _graph(np.random.default_rng(1))
    packed = prepack_int8(g, group=4, nr=32, lanes=16)
    added = [p.param_name for p in packed.params if parse_packed_name(p.param_name)]
    assert added == [packed_name("w", 4, 32, 1)]                    # the graph input w_in is packed per call
    np.testing.assert_array_equal(packed.param_values[added[0]], pack_weights(g.param_values["w"], 4, 32, 1))
    g.meta["param_updates"] = {"w_new": "w"}
    assert prepack_int8(g, group=4, nr=32, lanes=16) is g           # a trained weight changes every step


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_another_weight_array_is_packed_anew(target):
    rng = np.random.default_rng(2)
    g = _graph(rng)
    f = compile_graph(g, target=TARGETS[target])
    assert any(parse_packed_name(s.name) for s in f._slots)
    x, w_in = rng.integers(-128, 128, (5, 37)).astype(np.int8), rng.integers(-128, 128, (37, 20)).astype(np.int8)
    w2 = rng.integers(-127, 128, (37, 45)).astype(np.int8)

    def check(got, params):
        want = reference.run(g, [x, w_in], params)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)

    check(f([x, w_in]), {})
    check(f([x, w_in], {"w": w2}), {"w": w2})          # another array: repacked
    check(f([x, w_in]), {})                             # the defaults again
    w3 = w2.copy()
    w3[0] += 1
    check(f([x, w_in], {"w": w3}), {"w": w3})          # equal shape, new object: repacked
    bound = f.bind({"w": w2})
    check(bound([x, w_in]), {"w": w2})


def test_assign_and_set_weights_on_a_quantized_model_reach_native_code():
    m, x = convnet(), images(16)
    q = kc.quantization.quantize(m, calibration_data=x)
    before = q.predict(x, verbose=0)
    layer = q.get_layer("hidden")
    kernel = layer.kernel
    assert kernel.value_array.dtype == np.int8
    flipped = -kernel.value_array
    kernel.assign(flipped)
    native = q.predict(x, verbose=0)
    kc.config.set_backend("reference")
    try:
        ref = q.predict(x, verbose=0)
    finally:
        kc.config.set_backend(None)
    assert not np.allclose(native, before)
    np.testing.assert_allclose(native, ref, rtol=0, atol=1e-6)
    layer.set_weights([w.numpy() * 0 if w is kernel else w.numpy() for w in layer.weights])
    zeroed = q.predict(x, verbose=0)
    assert not np.allclose(zeroed, native)
