"""Where a cold compile's time goes: per phase, for the first predict_on_batch and first train_on_batch.

Each model runs in a fresh process with an empty compile cache and the forked compile helper off
(KCOMPILE_PARALLEL_COMPILE=0, so that every LLVM call is timed here), and the phases are timed on the
process's CPU clock by wrapping the compiler's stage functions:

  passes        the graph pass pipeline (fusion, memory plan, ...)
  codegen       lowering to llvmlite IR objects (without printing them)
  IR print      llvmlite's IR printer: the glue module's text and each kernel's own module text
  parse         LLVM parsing and verifying the IR text (kernels | glue)
  opt           LLVM's optimization pipeline (kernels | glue)
  emit          LLVM's code generator to an object (kernels | glue)
  load          MCJIT linking the objects in-process
  other         the rest of the first call (tracing, autodiff, the call itself)

    python bench/bench_compile_phases.py [--models mlp,convnet] [--repeats 1] [--tiered]

--tiered: the default JIT of a cold process (compiler/tier_up.py): the phases are this process's
tier-0 work (LLVM at O0); the child that compiles tier 1 beside is not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
import numpy as np
import kcompile as lib
from llvmlite import ir
from kcompile.compiler import codelib, codegen, driver, kernel_library, codelib as cl
clock = time.process_time
acc = {}
def add(k, dt): acc[k] = acc.get(k, 0.0) + dt
def kind(name): return "kernels" if name.startswith("kc_") else "glue"
depth = [0]
def timed(key_fn, fn):
    def wrapper(*a, **kw):
        if depth[0]:
            return fn(*a, **kw)
        depth[0] += 1
        t = clock()
        try:
            return fn(*a, **kw)
        finally:
            depth[0] -= 1
            add(key_fn(*a), clock() - t)
    return wrapper
# IR printing: the glue's inside codegen (subtracted there), the kernels' when they are compiled
printed, printing = [0.0], [0]
def print_timer(orig):
    def wrapper(self):
        if printing[0]:           # a function printed inside its module's text
            return orig(self)
        printing[0] += 1; t = clock()
        try:
            return orig(self)
        finally:
            printing[0] -= 1; printed[0] += clock() - t
    return wrapper
ir.Module.__str__ = print_timer(ir.Module.__str__)
ir.Function.__str__ = print_timer(ir.Function.__str__)
if hasattr(kernel_library, "KernelText"):   # (an older checkout printed the kernels in codegen)
    kernel_library.KernelText.__str__ = print_timer(kernel_library.KernelText.__str__)   # printed when compiled
orig_generate = driver.generate
def generate(*a, **kw):
    p0 = printed[0]; t = clock(); r = orig_generate(*a, **kw); dt = clock() - t; dp = printed[0] - p0
    add("codegen", dt - dp); return r
driver.generate = generate
C = cl.CodeLibrary
C._parse = (lambda f: lambda self: timed(lambda s: f"parse {kind(s.name)}", f)(self))(C._parse)
C._optimize = (lambda f: lambda self, m: timed(lambda s, m: f"opt {kind(s.name)}", f)(self, m))(C._optimize)
orig_emit = C.emit_jit_object
def emit(self):
    self.module   # parse + optimize timed above
    t = clock(); r = orig_emit(self); add(f"emit {kind(self.name)}", clock() - t); return r
C.emit_jit_object = emit
orig_from_object = cl.JITEngine.from_object.__func__
def from_object(cls, *a, **kw):
    t = clock(); r = orig_from_object(cls, *a, **kw); add("load", clock() - t); return r
cl.JITEngine.from_object = classmethod(from_object)
orig_planned = driver.Compilation.planned.fget
def planned(self):
    fresh = "planned" not in self._stages
    t = clock(); r = orig_planned(self)
    if fresh: add("passes", clock() - t)
    return r
driver.Compilation.planned = property(planned)

model_name = sys.argv[1]
L = lib.layers
if model_name == "mlp":
    model = lib.Sequential([lib.Input((784,)), L.Dense(512, activation="relu"), L.Dense(10, activation="softmax")])
    x = np.random.rand(64, 784).astype("float32")
else:
    model = lib.Sequential([lib.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(),
                            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(),
                            L.Dense(10, activation="softmax")])
    x = np.random.rand(64, 28, 28, 1).astype("float32")
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
y = np.random.randint(0, 10, 64)
out = {}
for call, fn in (("predict", lambda: model.predict_on_batch(x)), ("train", lambda: model.train_on_batch(x, y))):
    acc.clear(); printed[0] = 0.0; t = clock(); w = time.perf_counter(); fn()
    total = clock() - t
    acc["IR print"] = printed[0]
    acc["other"] = total - sum(acc.values()); acc["total"] = total; acc["wall"] = time.perf_counter() - w
    out[call] = dict(acc)
print(json.dumps(out))
"""

PHASES = ["passes", "codegen", "IR print", "parse kernels", "opt kernels", "emit kernels",
          "parse glue", "opt glue", "emit glue", "load", "other", "total", "wall"]


def run(model: str, tiered: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="kcompile-phases-") as cache:
        env = dict(os.environ, KCOMPILE_CACHE_DIR=cache, KCOMPILE_PARALLEL_COMPILE="0", KCOMPILE_TIER_UP="0")
        if tiered:    # (tier-up needs the fork the helper-off switch forbids; tier 0 does not use the helper)
            env.pop("KCOMPILE_PARALLEL_COMPILE")
            env["KCOMPILE_TIER_UP"] = "1"
        env.pop("KCOMPILE_DISABLE_CACHE", None)
        out = subprocess.run([sys.executable, "-c", CHILD, model], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{model} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="mlp,convnet")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tiered", action="store_true", help="tier 0 of the tiered JIT (its child not counted)")
    args = p.parse_args(argv)
    what = "tier 0 of a tiered compile" if args.tiered else "one process, fork helper and tier-up off"
    print(f"cold compile phases, CPU seconds ({what}, empty cache), load average "
          f"{os.getloadavg()[0]:.2f}, medians of {args.repeats}")
    for model in args.models.split(","):
        runs = [run(model, args.tiered) for _ in range(args.repeats)]
        print(f"\n{model:8} {'phase':14} {'predict':>8} {'train':>8} {'both':>8}")
        for phase in PHASES:
            vals = [statistics.median(r[call].get(phase, 0.0) for r in runs) for call in ("predict", "train")]
            print(f"{'':8} {phase:14} {vals[0]:8.3f} {vals[1]:8.3f} {sum(vals):8.3f}")


if __name__ == "__main__":
    main()
