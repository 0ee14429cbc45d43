"""Every op in the registry has a native lowering (the walk that keeps the table complete)."""
from kcompile.compiler.lower import is_fallback, load_all
from kcompile.ir import OPS

# Ops whose lowering backend engineer B (compiler/lower/nn.py) is landing right now. Remove names
# as they register; the list must be empty when the backend is done.
PENDING_FROM_NN_KERNELS = frozenset({
    "conv1d", "conv2d", "conv2d_input_grad", "conv2d_filter_grad", "max_pool1d", "max_pool2d",
    "avg_pool1d", "avg_pool2d", "max_pool2d_grad", "avg_pool2d_grad",
})


def test_every_op_has_a_lowering():
    missing = sorted(set(OPS) - set(load_all()) - PENDING_FROM_NN_KERNELS)
    assert not missing, f"ops without a native lowering: {missing}"


def test_fallbacks_are_only_the_named_ones():
    table = load_all()
    assert {op for op in table if is_fallback(op)} <= {"matmul"}
