"""Shared fixture of the kernel tests (no tests here): make every kernel call use all requested threads."""
import pytest

from kcompile.compiler.kernels import depthwise, direct, direct_grad, gemm, pool


@pytest.fixture(scope="module")
def every_call_threaded():
    """Kernels emitted inside this fixture wake a thread for any amount of work (normally only for
    enough work), so the tests' small problems really run on 2 threads."""
    saved = gemm.GRAIN_FLOPS, pool.GRAIN, depthwise.GRAIN, direct.GRAIN, direct_grad.GRAIN
    gemm.GRAIN_FLOPS = pool.GRAIN = depthwise.GRAIN = direct.GRAIN = direct_grad.GRAIN = 1
    yield
    gemm.GRAIN_FLOPS, pool.GRAIN, depthwise.GRAIN, direct.GRAIN, direct_grad.GRAIN = saved
