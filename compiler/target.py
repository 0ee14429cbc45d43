"""The host target: CPU name and features from LLVM (never hard-coded), one TargetMachine at opt 3."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

from .codelib import LLVM_LOCK


@dataclass(frozen=True)
class Target:
    """What codegen needs to know about the machine it generates code for."""

    triple: str
    cpu: str
    features: str           # LLVM feature string, "+avx2,+fma,-avx512f,..."
    vector_bits: int        # preferred SIMD register width for generated loops

    @property
    def enabled_features(self) -> list[str]:
        return sorted(f[1:] for f in self.features.split(",") if f.startswith("+"))

    def has(self, feature: str) -> bool:
        return feature in self.enabled_features

    @property
    def is_x86(self) -> bool:
        return self.triple.startswith(("x86_64", "i386", "i686"))

    def without(self, *names: str) -> "Target":
        """This target with features turned off (naming "avx512f" turns off every AVX-512 feature):
        how tests run the narrower code paths (e.g. the AVX2 int8 kernels) on a wider host."""
        def off(f):
            name = f[1:]
            return any(name == n or (n == "avx512f" and name.startswith("avx512")) for n in names)
        feats = ",".join("-" + f[1:] if f.startswith("+") and off(f) else f for f in self.features.split(","))
        enabled = {f[1:] for f in feats.split(",") if f.startswith("+")}
        return Target(self.triple, self.cpu, feats, _preferred_vector_bits(enabled, self.cpu))

    def lanes(self, itemsize: int) -> int:
        """Vector lanes for elements of `itemsize` bytes."""
        return max(1, self.vector_bits // (8 * itemsize))

    def machine(self, opt_level: int = 3) -> llvm.TargetMachine:
        """A shared TargetMachine (never hand it to a JIT engine: engines take ownership)."""
        return _target_machine(self.triple, self.cpu, self.features, opt_level)

    def jit_emitter(self, opt_level: int = 3) -> llvm.TargetMachine:
        """A shared TargetMachine like new_machine's, only to emit JIT objects (never for an engine):
        a fresh machine's first emission costs ~1.5 ms more, paid per module in a cold compile."""
        return _jit_emitter(self.triple, self.cpu, self.features, opt_level)

    def new_machine(self, opt_level: int = 3) -> llvm.TargetMachine:
        """A fresh TargetMachine for an MCJIT engine (which takes ownership of it).

        JIT code uses LLVM's JIT code model, not the small one an object file uses: MCJIT maps the
        code and data sections of each module separately, anywhere in the address space, so 32-bit
        PC-relative references between them can overflow once a long-lived process (a test suite,
        a notebook) has mapped thousands of them."""
        return _jit_machine(self.triple, self.cpu, self.features, opt_level)


def _preferred_vector_bits(features: set, cpu: str = "") -> int:
    # LLVM itself prefers 256-bit vectors on Intel's AVX-512 parts (frequency throttling), so do we.
    # AMD Zen 4/5 issue a 512-bit op as two 256-bit halves at full clock: zmm loops run half the
    # instructions (measured: BiLSTM batch-32 inference, its gate loops, 3-6% less CPU time per call).
    if "avx512f" in features and cpu.startswith("znver"):
        return 512
    if "avx2" in features or "avx" in features:
        return 256
    if "sse2" in features or "neon" in features:
        return 128
    return 64


@functools.lru_cache(maxsize=None)
def host_target() -> Target:
    """The machine we run on, as LLVM sees it."""
    initialize_llvm()
    with LLVM_LOCK:
        triple = llvm.get_process_triple()
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten()
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    return Target(triple, cpu, features, _preferred_vector_bits(enabled, cpu))


def target_for(cpu: str | None = None, features: str | None = None) -> Target:
    """The host, or another CPU of the host's architecture that this machine can run (e.g. cpu
    "x86-64-v3" with features "+avx2,-avx512f"): tests force the narrower code paths with it."""
    host = host_target()
    if cpu is None and features is None:
        return host
    features = features if features is not None else host.features
    enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
    return Target(host.triple, cpu or host.cpu, features, _preferred_vector_bits(enabled, cpu or host.cpu))


@functools.lru_cache(maxsize=None)
def _target_machine(triple: str, cpu: str, features: str, opt_level: int) -> llvm.TargetMachine:
    with LLVM_LOCK:
        target = llvm.Target.from_triple(triple)
        return target.create_target_machine(cpu=cpu, features=features, opt=opt_level, reloc="pic",
                                            codemodel="default")


def _jit_machine(triple: str, cpu: str, features: str, opt_level: int) -> llvm.TargetMachine:
    with LLVM_LOCK:
        target = llvm.Target.from_triple(triple)
        return target.create_target_machine(cpu=cpu, features=features, opt=opt_level,
                                            reloc="static", codemodel="jitdefault", jit=True)


_jit_emitter = functools.lru_cache(maxsize=None)(_jit_machine)


@functools.lru_cache(maxsize=None)
def initialize_llvm() -> None:
    with LLVM_LOCK:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
