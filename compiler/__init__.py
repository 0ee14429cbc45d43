"""kcompile.compiler: graphs -> native code (llvmlite) and ONNX.

    driver.Compilation(entries, name, options)      one compile, its stages cached: planned graphs,
                                                     NativeModule, optimized LLVM, asm, object, .so, JIT
    jit.compile_graph(graph) -> NativeFunction      in-process, cached by graph structure
    artifact.write_artifact(graph, outdir, name)     AOT directory: lib<name>.so, <name>.h,
                                                     manifest.json, weights.bin (runtime.load reads it)
    linker      object code -> shared library with the system's cc
    codegen     one exported C function per entry point over caller-provided buffers
    lower/      the lowering table LOWERINGS (op -> loop-nest emitter); kernels/ the GEMM/conv kernels
    codelib     one LLVM module's lifecycle (parse, verify, optimize, object/JIT) under LLVM_LOCK
    target      the host CPU (name and features from LLVM), vector widths
    onnx_export the ONNX exporter
"""
