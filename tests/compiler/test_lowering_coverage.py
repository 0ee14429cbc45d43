"""Every op in the registry has a native lowering (the walk that keeps the table complete)."""
from kcompile.compiler.lower import is_fallback, load_all
from kcompile.ir import OPS


def test_every_op_has_a_lowering():
    missing = sorted(set(OPS) - set(load_all()))
    assert not missing, f"ops without a native lowering: {missing}"


def test_only_the_named_fallbacks_remain_and_none_is_in_use():
    table = load_all()
    assert {op for op in table if is_fallback(op)} == set(), "a fallback lowering is still in use"
