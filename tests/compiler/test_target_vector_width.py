"""The generated loops' vector width (Target.vector_bits): 512 bits only on AMD Zen parts with AVX-512
(full clock on zmm), 256 on Intel's AVX-512 parts and wherever AVX-512 is turned off, 128 without AVX."""
import pytest

from kcompile.compiler.target import host_target, target_for

AVX512 = "+avx,+avx2,+fma,+avx512f,+avx512bw,+avx512vl"


@pytest.fixture(autouse=True)
def _x86_only():
    if not host_target().is_x86:
        pytest.skip("x86 CPU names")


@pytest.mark.parametrize("cpu,features,bits", [("znver4", AVX512, 512), ("znver5", AVX512, 512),
                                               ("skylake-avx512", AVX512, 256), ("sapphirerapids", AVX512, 256),
                                               ("znver3", "+avx,+avx2,+fma,-avx512f", 256),
                                               ("x86-64-v2", "+sse4.2,+sse2,-avx,-avx2", 128)])
def test_preferred_width(cpu, features, bits):
    t = target_for(cpu, features)
    assert t.vector_bits == bits and t.lanes(4) == bits // 32


def test_turning_avx512_off_narrows_the_loops():
    assert target_for("znver4", AVX512).without("avx512f").vector_bits == 256
