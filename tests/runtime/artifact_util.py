"""Shared artifact fixtures: a small MLP-like model, and a training step with in-place updates."""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, TensorType


def small_model(seed: int = 0):
    """x f32[N,7] -> softmax(relu(x @ W + b) * 0.5), plus a per-row sum output."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("small")
    x = b.input("x", TensorType(["N", 7]))
    w = b.param("dense/kernel", rng.standard_normal((7, 5)).astype(np.float32))
    bias = b.param("dense/bias", rng.standard_normal(5).astype(np.float32))
    with b.location("dense"):
        h = b.relu(b.add(b.matmul(x, w), bias))
    y = b.softmax(b.mul(h, b.constant(0.5)))
    s = b.reduce_sum(h, axes=(1,))
    return b.build([y, s], ["probs", "total"])


def sgd_step(seed: int = 1):
    """A linear regression SGD step with a random input mask: loss = mean((x@w - y)^2);
    w -= lr * dloss/dw in place. Takes the runtime-supplied __learning_rate and __rng_counter."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("sgd")
    x = b.input("x", TensorType(["N", 3]))
    y = b.input("y", TensorType(["N", 2]))
    lr_in = b.input("__learning_rate", TensorType([]))
    counter = b.input("__rng_counter", TensorType([], "i64"))
    keep = b.less(b.random_uniform_like(x, counter, seed=5), b.constant(0.8))  # dropout-like mask on x
    x = b.where(keep, x, b.mul(x, b.constant(0.0)))
    w = b.param("w", rng.standard_normal((3, 2)).astype(np.float32))
    err = b.sub(b.matmul(x, w), y)
    loss = b.reduce_mean(b.square(err))
    grad = b.matmul(x, b.mul(err, b.constant(2.0)), transpose_a=True)
    count = b.reduce_sum(b.add(b.mul(err, b.constant(0.0)), b.constant(1.0)))  # N*2 elements
    new_w = b.sub(w, b.mul(b.div(grad, count), lr_in))
    b.meta["param_updates"] = {"new_w": "w"}
    return b.build([loss, new_w], ["loss", "new_w"])
