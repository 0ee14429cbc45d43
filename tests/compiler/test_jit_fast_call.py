"""NativeFunction's calls with exact arrays and default parameters: outputs stay the caller's, other
inputs still convert or fail clearly, threads do not share state (the fast path for repeated calls
is NativeFunction.plan, ir/call_plan.py; tests/frontend/test_fast_predict.py)."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.ir import GraphBuilder, TensorType


def _fn():
    b = GraphBuilder("fast_call")
    x = b.input("x", TensorType(["N", 3]))
    w = b.param("w", np.arange(6, dtype=np.float32).reshape(3, 2))
    return compile_graph(b.build([b.matmul(x, w)]))


def test_outputs_are_fresh_and_inputs_still_convert():
    f = _fn()
    x = np.ones((4, 3), np.float32)
    y1, = f([x])
    y2, = f([x * 2])
    assert y1 is not y2 and np.array_equal(y1, np.full((4, 2), [6, 9], np.float32))   # y1 kept its values
    np.testing.assert_array_equal(y2, 2 * y1)
    np.testing.assert_array_equal(f([x.astype(np.float64)])[0], y1)            # converted by the full path
    np.testing.assert_array_equal(f([np.asfortranarray(np.ones((4, 3), np.float32))])[0], y1)
    np.testing.assert_array_equal(f([x], {"w": np.zeros((3, 2), np.float32)})[0], 0)
    with pytest.raises(ValueError):
        f([np.ones((4, 5), np.float32)])



def test_dropped_outputs_are_reused_kept_ones_never():
    f = _fn()
    x = np.ones((2, 3), np.float32)
    first = f([x])[0]
    del first                                    # nothing refers to it now: the next call may reuse it
    again = f([x * 3])[0]
    np.testing.assert_array_equal(again, np.full((2, 2), [18, 27], np.float32))
    view = again[:1]                             # a view keeps `again` (its base) the caller's
    f([x])
    np.testing.assert_array_equal(view, [[18, 27]])


def test_threads_calling_at_once_get_their_own_results():
    f, w = _fn(), np.arange(6, dtype=np.float32).reshape(3, 2)

    def wrong_results(k):
        x = np.full((3, 3), k, np.float32)
        return sum(not np.array_equal(f([x])[0], x @ w) for _ in range(200))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(wrong_results, range(4))) == [0] * 4
