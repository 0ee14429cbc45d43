"""The --train entry: the front end's training step, with its in-place parameter updates marked."""
from __future__ import annotations

from .errors import CLIError


def train_step_graph(model, optimizer: str | None, loss: str | None):
    """The front end's training step (forward, loss, gradients, update), with its in-place updates marked.

    Inputs: the model's inputs, the targets "y" (f32), "__rng_counter" (i64), "__learning_rate" and
    "__iterations" (f32); outputs: "loss" and "pred:..."; parameters and optimizer slots update in place.
    """
    from kcompile.ir import Graph
    if isinstance(model, Graph) or not hasattr(model, "compile"):
        raise CLIError("--train needs a kcompile model (a bare ir.Graph has no loss or optimizer)")
    compiled = getattr(model, "_compiled", None)
    if loss or optimizer:
        if loss is None and compiled is None:
            raise CLIError("--train: the model has no training configuration; give --loss (and --optimizer)")
        model.compile(optimizer=optimizer or (compiled.optimizer if compiled else "rmsprop"),
                      loss=loss or compiled.losses)
    elif compiled is None:
        raise CLIError("--train: the model has no training configuration (it was never compiled); "
                       "give --loss and --optimizer")
    from kcompile.frontend.training.train_step import build_train_step, output_types
    compiled = model._compiled
    y_types = [None if fn is None else _target_type(fn, t) for fn, t in zip(compiled.losses, output_types(model))]
    return build_train_step(model, compiled, y_types, False).graph  # its meta["param_updates"]: in place


def _target_type(loss, pred_type):
    """Targets as fit feeds them (float32): class indices for sparse losses, else the prediction's shape."""
    from kcompile.ir import TensorType
    sparse = "sparse" in (getattr(loss, "name", None) or type(loss).__name__).lower()
    return TensorType(("N",) if sparse else ("N",) + tuple(pred_type.shape[1:]), "f32")
