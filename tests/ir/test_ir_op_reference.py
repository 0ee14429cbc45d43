"""Every op's reference implementation against an independent formulation (tests/ir/ir_oracles*.py).

Each case runs twice: with static shapes, and with the symbolic batch N on the operands the case
names; every graph goes through the text round trip on the way.
"""
import numpy as np
import pytest

from kcompile.ir import OPS

from ir_util import run_op
from ir_op_cases import CASES


def test_every_op_has_reference_cases():
    missing = sorted(set(OPS) - {c.op for c in CASES})
    assert not missing, f"ops without a reference test case in tests/ir/ir_op_cases.py: {missing}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reference_matches_oracle(case):
    expected = case.oracle(case.arrays, case.attrs)
    for batched in dict.fromkeys([(), case.batched]):
        got = run_op(case.op, case.arrays, case.attrs, batched)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert (g.dtype, g.shape) == (e.dtype, e.shape), f"batched={batched}"
            if e.dtype.kind in "biu":
                np.testing.assert_array_equal(g, e)
            else:
                np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol, err_msg=f"batched={batched}")
