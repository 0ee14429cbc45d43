"""The process the kill tests SIGKILL: it rewrites an artifact, a saved model and an ONNX file in a loop.

    python kill_writer.py DIR

Two versions of one tiny model (Dense kernel all 1.0, or all 2.0) are compiled once; then, per
line on stdin: "fork" starts a child that writes version A, B, A, ... to DIR/artifact (the artifact
writer), DIR/model.keras (model.save), DIR/model.onnx (ONNX export) and DIR/cliout (the CLI's
staging and its `so` and `ir` emitters, over an OUTDIR holding a file of the user's) until it is killed, and
prints its pid; "reap" waits for that child; "final" writes each destination once more, to
completion (the "next run"). Forking after the compile keeps every kill cheap.
"""
import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")

import kcompile as kc  # noqa: E402
from kcompile.compiler.artifact import write_compilation  # noqa: E402
from kcompile.compiler.driver import Compilation, CompileOptions  # noqa: E402
from kcompile.compiler.onnx_export import export_onnx  # noqa: E402
from kcompile.cli.compile import _staged  # noqa: E402
from kcompile.cli.emit import EMITTERS  # noqa: E402
from kcompile.cli.job import CompileJob  # noqa: E402


def version(value: float):
    m = kc.Sequential([kc.Input((3,)), kc.layers.Dense(2, name="dense")], name="tiny")
    m.set_weights([np.full((3, 2), value, np.float32), np.zeros(2, np.float32)])
    graph = m.forward_graph()
    comp = Compilation({"forward": graph}, "tiny", CompileOptions(opt_level=1))
    comp.shared_library, comp.native, comp.planned  # everything computed before any fork
    return m, graph, comp


def write_all(out: Path, v) -> None:
    model, graph, comp = v
    write_compilation(comp, out / "artifact")
    model.save(out / "model.keras")
    export_onnx(graph, out / "model.onnx")
    with _staged(out / "cliout") as stage:   # what `kcompile MODEL -o cliout --emit ir,so` does after compiling
        job = CompileJob(model, argparse.Namespace(name="tiny", quantize=None, train=False, batch=None), stage)
        job._compilation = comp
        EMITTERS["ir"](job)
        EMITTERS["so"](job)


def main(out: Path) -> None:
    versions = [version(1.0), version(2.0)]
    print(json.dumps({"ready": True}), flush=True)
    child = None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "fork":
            child = os.fork()
            if child == 0:
                i = 0
                while True:
                    write_all(out, versions[i % 2])
                    i += 1
            print(json.dumps({"pid": child}), flush=True)
        elif cmd == "reap":
            os.waitpid(child, 0)
            print(json.dumps({"reaped": child}), flush=True)
        elif cmd == "final":
            write_all(out, versions[0])
            print(json.dumps({"final": True}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
