"""Transposed convolution at a segmentation decoder's shape: kcompile native vs Keras 3 on JAX.

Conv2DTranspose(16, 3, strides=2, padding="same") from 64x64x32 to 128x128x16 (and the other shapes
given), same weights in both; prints the median time per call, the kcompile/Keras-JAX ratio, the
thread count and the CPU features. "kcompile-strided" is the pipeline without subpixel-conv-transpose:
the strided kernel that multiplies every tap at every output position.

--input-grad times the other strided scatter the pass rewrites, a strided Conv2D's input gradient
(conv2d_input_grad, in every training step of a strided conv; issue #13's "strided-conv input
gradient without the stride^2 extra work"): Conv2D(filters, k, strides, same) on HxWxC, the
gradient of its output cotangent dy with respect to its input, against jax.vjp of the Keras layer.

    python bench/bench_conv_transpose.py [--threads 1] [--batches 1,8] [--seconds 1] [--input-grad]
"""
from __future__ import annotations

import argparse

import numpy as np

from bench_machine import machine_line
from bench_models import measure, pin_threads
import os
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--shape", default="64,64,32", help="input H,W,C")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--strides", type=int, default=2)
    p.add_argument("--input-grad", action="store_true", help="a strided Conv2D's input gradient instead")
    return p.parse_args(argv)


def _model(lib, args):
    h, w, c = (int(v) for v in args.shape.split(","))
    inp = lib.Input(shape=(h, w, c))
    out = lib.layers.Conv2DTranspose(args.filters, args.kernel, strides=args.strides, padding="same",
                                     activation="relu")(inp)
    return lib.Model(inp, out)


def runners(args):
    return input_grad_runners(args) if args.input_grad else transpose_runners(args)


def _without_subpixel(graph):
    from kcompile.compiler.driver import Compilation, CompileOptions, c_symbol
    from kcompile.compiler.jit import NativeFunction
    return NativeFunction(graph, Compilation({"forward": graph}, c_symbol(graph.name),
                                             CompileOptions(passes=("canonicalize", "fuse", "plan-memory"))))


def input_grad_runners(args):
    """dy -> dx of Conv2D(filters, kernel, strides, same) on args.shape, same kernel everywhere."""
    import jax
    import keras
    from kcompile.compiler.jit import compile_graph
    from kcompile.ir import GraphBuilder, TensorType
    from kcompile.ir.ops.nn import conv_geometry
    h, w, c = (int(v) for v in args.shape.split(","))
    k, s, f = args.kernel, args.strides, args.filters
    oh, ow = (conv_geometry(n, k, s, 1, "same")[0] for n in (h, w))
    kernel = np.random.default_rng(0).standard_normal((k, k, c, f)).astype(np.float32) * 0.1
    b = GraphBuilder("conv_input_grad")
    dy = b.input("dy", TensorType(("N", oh, ow, f)))
    graph = b.build([b.conv2d_input_grad(dy, b.param("kernel", kernel), input_shape=("N", h, w, c),
                                         strides=(s, s), padding="same")])
    fn, strided = compile_graph(graph), _without_subpixel(graph)
    layer = keras.layers.Conv2D(f, k, strides=s, padding="same", use_bias=False)
    layer.build((None, h, w, c))
    layer.set_weights([kernel])

    @jax.jit
    def dx(g):
        x0 = jax.numpy.zeros((g.shape[0], h, w, c), jax.numpy.float32)
        return jax.vjp(lambda x: layer(x), x0)[1](g)[0]   # linear in x: the cotangent map alone
    return {"kcompile": lambda x: fn([x], nthreads=args.threads)[0],
            "kcompile-strided": lambda x: strided([x], nthreads=args.threads)[0],
            "keras-jax": lambda x: np.asarray(dx(x).block_until_ready())}


def transpose_runners(args):
    import jax
    import keras
    import kcompile as kc
    from kcompile.compiler.jit import compile_graph

    ours, theirs = _model(kc, args), _model(keras, args)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.1 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    graph = ours.forward_graph()
    fn = compile_graph(graph)
    strided = _without_subpixel(graph)
    call = jax.jit(lambda x: theirs(x, training=False))
    return {"kcompile": lambda x: fn([x], nthreads=args.threads)[0],
            "kcompile-strided": lambda x: strided([x], nthreads=args.threads)[0],
            "keras-jax": lambda x: np.asarray(call(x).block_until_ready())}


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)
    print(machine_line(args.threads))
    fns = runners(args)
    h, w, c = (int(v) for v in args.shape.split(","))
    if args.input_grad:   # the runners take dy
        from kcompile.ir.ops.nn import conv_geometry
        h, w, c = (*(conv_geometry(n, args.kernel, args.strides, 1, "same")[0] for n in (h, w)), args.filters)
    what = (f"Conv2D({args.filters}, {args.kernel}, strides={args.strides}, same) input gradient, dy"
            if args.input_grad else f"Conv2DTranspose({args.filters}, {args.kernel}, strides={args.strides}, same)")
    for batch in (int(b) for b in args.batches.split(",")):
        x = np.random.default_rng(batch).standard_normal((batch, h, w, c)).astype(np.float32)
        got, want = fns["kcompile"](x), fns["keras-jax"](x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        res = measure(fns, x, args.seconds)
        ours, strided, theirs = (res[k][0] for k in ("kcompile", "kcompile-strided", "keras-jax"))
        print(f"{what} {batch}x{h}x{w}x{c} -> {tuple(got.shape[1:])}: kcompile {1e3 * ours:8.2f} ms "
              f"(strided kernel {1e3 * strided:8.2f} ms), keras-jax {1e3 * theirs:8.2f} ms, "
              f"kcompile/keras-jax {ours / theirs:.2f}x, phase form/strided kernel {ours / strided:.2f}x")


if __name__ == "__main__":
    main()
