"""The command line's argument parsers, their help text and the --emit kinds."""
from __future__ import annotations

import argparse

import kcompile

EMIT_KINDS = {
    "ir": "the traced IR as text (NAME.kir), which kcompile.ir.parse_graph reads back",
    "opt": "the IR after the pass pipeline (NAME.opt.kir)",
    "llvm": "LLVM IR of the generated code (NAME.ll)",
    "asm": "assembly for the target (NAME.s)",
    "obj": "the object file (NAME.o)",
    "so": "the native artifact: shared library, C header, manifest and weights (the default)",
    "header": "the C header declaring the entry points (NAME.h)",
    "onnx": "an ONNX model of the inference graph (NAME.onnx; with --train also NAME.train_step.onnx)",
}


def compile_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(f"  {k:<7} {v}" for k, v in EMIT_KINDS.items())
    p = argparse.ArgumentParser(
        prog="kcompile", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compile a Keras-style model ahead of time into native code or ONNX.",
        epilog=f"emit kinds:\n{kinds}\n\nother commands:\n"
               "  kcompile run ARTIFACT --input x.npy [--output y.npy]   run an artifact (or a .onnx file)\n"
               "  kcompile inspect ARTIFACT                              print an artifact's manifest\n"
               "  (kcompile run --help, kcompile inspect --help for their options)\n")
    p.add_argument("model", metavar="MODEL",
                   help="a saved kcompile model (model.save; loading it never runs code) or a .py file "
                        "defining `model` or `build_model()` (the file is executed)")
    p.add_argument("-o", "--output", metavar="OUTDIR", required=True,
                   help="output folder (created if missing; files of the same names in it are replaced)")
    p.add_argument("--emit", action="append", metavar="KIND",
                   help=f"what to write: {', '.join(EMIT_KINDS)} (repeat or comma-separate; default: so)")
    p.add_argument("--name", help="base name of the written files and the C entry points (default: the model's)")
    p.add_argument("--train", action="store_true",
                   help="also compile the training step (forward, loss, gradients, optimizer update)")
    p.add_argument("--optimizer", help="optimizer for --train when the model was not compiled with one "
                                       "(a Keras name: sgd, rmsprop, adam, ...)")
    p.add_argument("--loss", help="loss for --train when the model was not compiled with one "
                                  "(a Keras name: mse, sparse_categorical_crossentropy, ...)")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=3, metavar="{0,1,2,3}",
                   help="optimization level of the pass pipeline and of LLVM (default: 3)")
    p.add_argument("--target", default="host",
                   help="target CPU: 'host' (the default: this machine's CPU and its features)")
    p.add_argument("--passes", help="comma-separated pass pipeline replacing the default one for -O")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (to stderr)")
    p.add_argument("--verify-each", action="store_true", help="run the IR verifier after every pass")
    p.add_argument("--sparse", choices=("auto", "always", "never"),
                   help="sparse kernels for weights with zeros: auto (the default: where the cost model "
                        "expects a speedup), always (every dense-layer kernel), never; the report lists each "
                        "kernel's choice, density and estimated speedup. Not with --train (kept dense)")
    p.add_argument("--batch", type=int, help="specialize the compiled code and the ONNX model to this batch size")
    p.add_argument("--opset", type=int, help="ONNX opset for --emit onnx (default 18; 18-21 accepted)")
    p.add_argument("--quantize", choices=["int8"],
                   help="compile a static int8 model: weights per output channel, activations per tensor, "
                        "ranges calibrated on --calibration-data")
    p.add_argument("--calibration-data", metavar="FILE",
                   help="for --quantize: samples of the model's input (.npy; .npz with one array per input name)")
    p.add_argument("--calibration-method", choices=["minmax", "percentile", "entropy"],
                   help="for --quantize: how ranges are chosen from the samples (default: minmax)")
    p.add_argument("--version", action="version", version=f"kcompile {kcompile.__version__}")
    return p


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kcompile run", description="Run a compiled artifact, or a .onnx file "
                                "through onnxruntime, on inputs stored as .npy files.")
    p.add_argument("artifact", metavar="ARTIFACT", help="an artifact folder written by kcompile, or a .onnx file")
    p.add_argument("--input", action="append", required=True, metavar="[NAME=]FILE.npy",
                   help="one array per model input, in order or as NAME=FILE.npy (repeat the option)")
    p.add_argument("--output", metavar="FILE", help="save the result: FILE.npy for one output, FILE.npz for "
                                                    "several (default: print the outputs)")
    p.add_argument("--batch-size", type=int, help="run native artifacts in batches of this size")
    return p


def inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kcompile inspect",
                                description="Print an artifact's manifest, or a .onnx file's summary.")
    p.add_argument("artifact", metavar="ARTIFACT", help="an artifact folder written by kcompile, or a .onnx file")
    return p
