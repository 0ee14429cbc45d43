"""`model.compile()` announces the train step to the compiler, which may compile it early on the other core.

Keras's compile() tells that training will follow. With the native backend (and
KCOMPILE_BACKGROUND_COMPILE=1: opt-in), the step train_on_batch and
fit will build first (targets like the loss expects, the metrics accumulated inside, no sample weights)
is announced to compiler/background_compile.py: the next JIT compile (typically the first predict's)
forks a child that builds that step and compiles it into the disk cache while this process compiles
its own code, so the first train step finds its code there. The targets are guessed here, in the
child: class ids (shape (N,)) for sparse categorical cross-entropy, else the output's shape; a wrong
guess, or anything the child cannot do, costs only the child's time (the step compiles as before).
"""
from __future__ import annotations

import numpy as np


def announce(model) -> None:
    """Announce model's first train step (native backend, the compiled step, a cache to carry it)."""
    from kcompile.frontend.training.backend import resolve_backend
    c = model._compiled
    if resolve_backend(c.backend) != "native" or model._overrides("train_step"):
        return
    from kcompile.compiler import background_compile
    if background_compile.asked_for():     # (opt-in: no reference to the model kept otherwise)
        background_compile.request(lambda promised: _precompile(model, promised))


def before_train_step() -> None:
    """A train step is being built: start no child for it any more, and wait for one that compiles it."""
    import sys
    background = sys.modules.get("kcompile.compiler.background_compile")   # nothing announced if not imported
    if background is not None:
        background.cancel()
        background.wait()


def guessed_targets(model) -> list | None:
    """Targets (one row) of the shape the first train step will most likely get; None if unknown."""
    c = model._require_compiled("train_on_batch")   # binds the outputs (the model is built)
    ys = []
    for i, loss in enumerate(c.losses):
        if loss is None:
            ys.append(None)
            continue
        shape = tuple(model._output_shape(i))
        if not all(isinstance(d, int) for d in shape):
            return None
        sparse = type(loss).__name__ == "SparseCategoricalCrossentropy"
        ys.append(np.zeros((1,), np.int64) if sparse else np.zeros((1,) + shape, np.float32))
    return ys


def _precompile(model, promised) -> None:
    """In the child: build the step train_on_batch/fit would build and compile it into the disk cache."""
    from kcompile.compiler.jit import precompile
    if not model._is_built():
        return
    ys = guessed_targets(model)
    if ys is not None:
        precompile(model._build_step("train", ys, False, metrics_inside=True).graph, promised)
