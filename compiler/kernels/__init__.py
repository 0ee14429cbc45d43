"""Kernel emitters: functions added to an llvmlite module for matmul, convolution and pooling.

config       micro-tile and cache-block sizes from the target's CPU features (vector width never hard-coded)
microkernel  the register-blocked MR x NR FMA micro-kernel and the per-tile variant dispatch
packing      shared A/B panel packing routines
operands     strided GEMM operands: batch offsets, direct access, packing
gemm         the cache-blocked, multi-threaded GEMM driver over any operands
matmul       IR matmul -> GEMM (transposes, batch broadcasting, batch folded into M)
im2col       implicit-GEMM operands gathered from NHWC windows
conv         conv forward / input gradient / filter gradient as implicit GEMMs
depthwise    direct depthwise convolution
direct       direct convolution for a tiny contraction (first layers); direct_grad: its filter gradient
channels     loops over pixels with channels in vectors (pooling, depthwise)
pool         max/avg pooling and their gradients
epilogue     bias + activation applied to output tiles in registers
geometry     static convolution/pooling geometry (Keras padding)
standalone   kernel tests and benchmarks: a module JIT-compiled through codelib, for the host or a narrower CPU

Helpers (loops, vectors, masked access, intrinsics) come from compiler/loops.py, the one vocabulary.

Every kernel is `void f(T* operands..., i64 batch, i64 nthreads)`; parallel regions use
compiler/threads.py.  compiler/lower/nn.py maps IR nodes onto these functions.
"""
