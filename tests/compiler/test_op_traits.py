"""Every op trait keeps its promise (ir/registry.py TRAITS) for every op that declares it.

Passes and lowerings trust traits instead of name lists, so a trait declared wrongly would cost a
loop, a buffer or a wrong answer; these walks over OPS fail first."""
import os
import sys

import numpy as np
import pytest

from kcompile.compiler.driver import Compilation
from kcompile.compiler.lower import load_all
from kcompile.compiler.lower.context import LowerCtx
from kcompile.compiler.lower.elementwise import lower_elementwise
from kcompile.compiler.lower.elementwise_math import EMITTERS
from kcompile.ir import OPS, GraphBuilder, IRError, TensorType, ops_with
from kcompile.ir.registry import TRAITS
from kcompile.passes.fusion import fuse, fused_nodes
from kcompile.runtime.reference import run

from native_util import assert_native_matches, random_array

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "ir"))
from ir_op_cases import CASES  # noqa: E402

OTHER_ELEMENTWISE_INPUTS = {"where": 1}  # where's condition stays bool; its branches are the operands
# operands that must be parameters to compile: native code reads through sparse_matmul's index arrays,
# which are checked when parameters are set (compiler/lower/sparse.py)
PARAM_OPERANDS = {"sparse_matmul": (2, 3), "sparse_qmatmul": (2, 3)}


def test_every_declared_trait_is_known_and_every_trait_is_used():
    for name, op in OPS.items():
        assert op.traits <= set(TRAITS), name
    assert all(ops_with(t) for t in TRAITS), "a trait no op declares promises nothing"
    with pytest.raises(IRError, match="unknown op trait"):
        OPS["add"].has("elementwize")


def test_elementwise_ops_have_an_emitter_and_the_fused_loop_lowering():
    elementwise = ops_with("elementwise")
    assert elementwise == set(EMITTERS), ("elementwise trait and emitters differ: "
                                          f"{sorted(elementwise ^ set(EMITTERS))}")
    table = load_all()
    assert all(table[op] is lower_elementwise for op in elementwise)


def _type(a, batched):
    shape = ("N", *a.shape[1:]) if batched else a.shape
    return TensorType(shape, "bool" if a.dtype == np.bool_ else a.dtype.name)


def _as_int(case):
    start = OTHER_ELEMENTWISE_INPUTS.get(case.op, 0)
    return [a if k < start else np.arange(a.size, dtype=np.int32).reshape(a.shape) - 2
            for k, a in enumerate(case.arrays)]


@pytest.mark.parametrize("op", sorted(ops_with("elementwise")))
def test_integer_trait_says_exactly_which_elementwise_ops_take_integers(op):
    c = next(c for c in CASES if c.op == op)
    arrays = _as_int(c)
    b = GraphBuilder(op)
    xs = [b.input(f"x{k}", _type(a, k in c.batched)) for k, a in enumerate(arrays)]
    if OPS[op].has("integer"):
        out = b.op(op, *xs, **c.attrs)
        run(b.build([out]), arrays)
    else:
        with pytest.raises(IRError):
            b.op(op, *xs, **c.attrs)


@pytest.mark.parametrize("op", sorted(ops_with("view")))
def test_views_keep_the_elements_in_order(op):
    for c in [c for c in CASES if c.op == op]:
        (x,) = c.arrays
        b = GraphBuilder(op)
        out = b.op(op, b.input("x", _type(x, 0 in c.batched)), **c.attrs)
        assert out.type.dtype == b.build([out]).inputs[0].type.dtype
        (y,) = run(b.build([out]), [x])
        np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


def _epilogue(b, y, rng):
    """A bias add and the activation the fuse pass hands an anchor's kernel: relu on a float
    output, a requantize to 8 bits on an integer accumulator."""
    channels = y.type.shape[-1]
    if y.type.dtype.is_float:
        return b.relu(b.add(y, b.param("bias", rng.standard_normal(channels).astype(np.float32)))), "relu"
    biased = b.add(y, b.param("bias", rng.integers(-50, 50, channels).astype(y.type.dtype.np)))
    return b.requantize(biased, b.constant(np.float32(0.01)), b.constant(np.int8(-3))), "requantize"


@pytest.mark.parametrize("op", sorted(ops_with("anchor")))
def test_anchors_apply_a_bias_activation_epilogue_in_their_kernel(op, monkeypatch):
    c = next(c for c in CASES if c.op == op)
    rng = np.random.default_rng(5)
    b = GraphBuilder(op)
    params = PARAM_OPERANDS.get(op, ())
    xs = [b.param(f"p{k}", a) if k in params else b.input(f"x{k}", _type(a, k in c.batched))
          for k, a in enumerate(c.arrays)]
    out, activation = _epilogue(b, b.op(op, *xs, **c.attrs), rng)
    g = b.build([out])
    (node,) = fused_nodes(fuse(g))
    assert (node.attrs["kind"], node.attrs["activation"], node.attrs["in_kernel"]) == ("epilogue", activation, 2)
    taken = []
    take = LowerCtx.take_epilogue
    monkeypatch.setattr(LowerCtx, "take_epilogue", lambda ctx: taken.append(ctx.node.op) or take(ctx))
    Compilation({"forward": g}, f"trait_{op}").native  # codegen runs every lowering
    assert taken == [op], f"the {op} lowering did not take the bias+{activation} epilogue"
    assert_native_matches(g, lambda n: [a for k, a in enumerate(c.arrays) if k not in params], batches=(1,),
                          rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", sorted(ops_with("reduction")))
def test_reductions_read_a_fused_prologue(op):
    b = GraphBuilder(op)
    x = b.input("x", TensorType(["N", 5, 3]))
    g = b.build([b.op(op, b.mul(b.tanh(x), b.constant(0.5)), axes=(1,))])
    assert [n.attrs["kind"] for n in fused_nodes(fuse(g))] == ["prologue"]
    rng = np.random.default_rng(6)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 5, 3), np.float32)], rtol=1e-5, atol=1e-6)
