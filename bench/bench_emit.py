"""Several emit kinds: `kcompile MODEL --emit llvm,asm,so,onnx` against `--emit so` (issue #8's bar: +10%).

The book's MNIST MLP (784-512-10, rmsprop, --train) as a Python model file, compiled by fresh CLI
processes with the compile cache disabled (a cached object would make `so` free), the two command
lines interleaved. Prints the median wall time and the median CPU time of each (the child's user +
system time, ONNX export process included), their ratios, and the bar line.

    python bench/bench_emit.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

MODEL_PY = """
import kcompile as kc
L = kc.layers
model = kc.Sequential([kc.Input((784,)), L.Dense(512, activation="relu"), L.Dense(10, activation="softmax")])
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
"""
KINDS = {"so": "so", "llvm,asm,so,onnx": "llvm,asm,so,onnx"}
CLI = "import sys; from kcompile.cli import main; sys.exit(main(sys.argv[1:]))"   # the `kcompile` command


def run_cli(model: Path, out: Path, emit: str) -> tuple:
    env = dict(os.environ, KCOMPILE_DISABLE_CACHE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, str(model), "-o", str(out), "--emit", emit, "--train"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"--emit {emit} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    times = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="kcompile-bench-emit-") as tmp:
        model = Path(tmp) / "mnist_mlp.py"
        model.write_text(MODEL_PY)
        for r in range(args.repeats):
            for kind in (KINDS if r % 2 == 0 else reversed(list(KINDS))):   # interleaved, alternating order
                times[kind].append(run_cli(model, Path(tmp) / f"out-{r}-{kind.replace(',', '-')}", kind))
    print(f"threads: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; medians of {args.repeats} "
          "CLI processes, compile cache disabled, MNIST MLP with --train")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    for kind, (wall, cpu) in med.items():
        print(f"--emit {kind:18} wall {wall:6.2f} s   cpu {cpu:6.2f} s")
    wall_ratio = med["llvm,asm,so,onnx"][0] / med["so"][0]
    cpu_ratio = med["llvm,asm,so,onnx"][1] / med["so"][1]
    print(f"ratio llvm,asm,so,onnx / so: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x")
    print(f"bar: --emit llvm,asm,so,onnx wall <= --emit so + 10%: {wall_ratio:.2f}x "
          f"{'met' if wall_ratio <= 1.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
