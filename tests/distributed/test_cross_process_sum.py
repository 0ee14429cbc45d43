"""cross_process_sum in native code: identity without a hook (one process, AOT), the installed hook
called in place through the JIT-bound function pointer, and a hook's exception re-raised as it was."""
import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.ops.collective import set_sum_hook
from kcompile.runtime.reference import run


@pytest.fixture
def graph():
    b = GraphBuilder("cps")
    x = b.input("x", TensorType(["N", 5]))
    return b.build([b.add(b.cross_process_sum(b.mul(x, x)), x)], ["out"])


@pytest.fixture(autouse=True)
def _no_hook():
    previous = set_sum_hook(None)
    yield
    set_sum_hook(previous)


def test_native_sum_calls_the_hook_in_place_or_is_the_identity(graph):
    native, x = compile_graph(graph), np.arange(15, dtype=np.float32).reshape(3, 5) / 7
    np.testing.assert_array_equal(native([x])[0], x * x + x)
    seen = []

    def second_process_with_the_same_rows(buf):   # what a 2-process allreduce of equal shards gives
        seen.append((buf.dtype, buf.shape))
        buf *= 2
    set_sum_hook(second_process_with_the_same_rows)
    for run_it in (native, lambda a: run(graph, a)):
        np.testing.assert_array_equal(run_it([x])[0], 2 * x * x + x)
    assert seen == [(np.float32, (15,)), (np.float32, (3, 5))]   # native: a flat view of the buffer


def test_a_failing_hook_is_raised_by_native_and_reference_calls(graph):
    def gone(buf):
        raise TimeoutError("peer 1 did not answer")
    set_sum_hook(gone)
    x = np.ones((2, 5), np.float32)
    for run_it in (compile_graph(graph), lambda a: run(graph, a)):
        with pytest.raises(TimeoutError, match="peer 1"):
            run_it([x])
