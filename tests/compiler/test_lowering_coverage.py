"""Every op in the registry has a native lowering (the walk that keeps the table complete)."""
from kcompile.compiler.lower import load_all
from kcompile.ir import OPS


def test_every_op_has_a_lowering():
    missing = sorted(set(OPS) - set(load_all()))
    assert not missing, f"ops without a native lowering: {missing}"

