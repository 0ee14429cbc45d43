"""kcompile.compiler: graphs -> native code (llvmlite) and ONNX.

    jit.compile_graph(graph) -> NativeFunction      in-process, cached by graph structure
    jit.compile_artifact(graph, outdir, name)        AOT directory: lib<name>.so, <name>.h,
                                                     manifest.json, weights.bin (runtime.load reads it)
    driver      the pipeline: canonicalize -> fuse -> plan-memory -> codegen -> LLVM, with timings
    codegen     one exported C function per entry point over caller-provided buffers
    lower/      the lowering table LOWERINGS (op -> loop-nest emitter); kernels/ the GEMM/conv kernels
    codelib     one LLVM module's lifecycle (parse, verify, optimize, object/JIT) under LLVM_LOCK
    target      the host CPU (name and features from LLVM), vector widths
    onnx_export the ONNX exporter
"""
