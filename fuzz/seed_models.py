"""The seed material: a few small models saved, two compiled artifacts and their IR, written
once per run into a fixtures folder from the current code (so seeds always match the format)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def _models():
    import kcompile as kc
    L = kc.layers
    mlp = kc.Sequential([kc.Input((6,)), L.Dense(4, activation="relu"), L.Dropout(0.1),
                         L.Dense(3, activation="softmax")])
    a, b = kc.Input((5,), name="a"), kc.Input((5,), name="b")
    h = L.Concatenate()([L.Dense(3)(a), L.Add()([a, b])])
    functional = kc.Model([a, b], L.Dense(2)(L.BatchNormalization()(h)))
    conv = kc.Sequential([kc.Input((6, 6, 2)), L.Conv2D(3, 3, padding="same"), L.MaxPooling2D(2),
                          L.Flatten(), L.Dense(2)])
    seq = kc.Sequential([kc.Input((4, 3)), L.LSTM(2, return_sequences=True), L.GlobalAveragePooling1D(),
                         L.LayerNormalization(), L.Reshape((2, 1)), L.Flatten()])
    emb = kc.Sequential([kc.Input((5,), dtype="int32"), L.Embedding(7, 2), L.Conv1D(2, 2), L.Flatten()])
    return {"mlp": mlp, "functional": functional, "conv": conv, "seq": seq, "emb": emb}


def saved_models(fixtures: Path) -> list:
    folder = fixtures / "models"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for name, model in _models().items():
            model.save(folder / f"{name}.keras")
    return sorted(folder.glob("*.keras"))


def artifacts(fixtures: Path) -> dict:
    """{"small", "pair", "sgd"} -> artifact folder: forward-only with one batched input and two outputs,
    with a batched and an unbatched input, and a training one."""
    from kcompile.compiler.artifact import write_artifact
    out = {}
    for name in ("small", "pair", "sgd"):
        path = fixtures / "artifacts" / name
        if not (path / "manifest.json").is_file():
            graph = _graphs()[name]
            if name == "sgd":
                write_artifact(_graphs()["sgd_forward"], path, name, train_step=graph)
            else:
                write_artifact(graph, path, name)
        out[name] = path
    return out


def ir_texts() -> list:
    from kcompile.ir.text import print_graph
    texts = [print_graph(g) for g in _graphs().values()]
    for model in _models().values():
        texts.append(print_graph(model.forward_graph()))
    return texts


def _graphs() -> dict:
    from kcompile.ir import GraphBuilder, TensorType
    rng = np.random.default_rng(0)
    b = GraphBuilder("small")
    x = b.input("x", TensorType(["N", 7]))
    w = b.param("dense/kernel", rng.standard_normal((7, 5)).astype(np.float32))
    bias = b.param("dense/bias", rng.standard_normal(5).astype(np.float32))
    h = b.relu(b.add(b.matmul(x, w), bias))
    small = b.build([b.softmax(b.mul(h, b.constant(0.5))), b.reduce_sum(h, axes=(1,))], ["probs", "total"])

    def linear(train: bool):
        b = GraphBuilder("sgd")
        x = b.input("x", TensorType(["N", 3]))
        w = b.param("w", np.arange(6, dtype=np.float32).reshape(3, 2) / 6)
        pred = b.matmul(x, w)
        if not train:
            return b.build([pred], ["pred"])
        y = b.input("y", TensorType(["N", 2]))
        lr = b.input("__learning_rate", TensorType([]))
        err = b.sub(pred, y)
        grad = b.matmul(x, b.mul(err, b.constant(2.0)), transpose_a=True)
        b.meta["param_updates"] = {"new_w": "w"}
        return b.build([b.reduce_mean(b.square(err)), b.sub(w, b.mul(grad, lr))], ["loss", "new_w"])
    b = GraphBuilder("pair")
    a, scale = b.input("a", TensorType(["N", 4])), b.input("b", TensorType([4]))
    prod = b.add(b.mul(a, scale), b.constant(1.0))
    pair = b.build([prod, b.reduce_sum(prod, axes=(1,))], ["scaled", "total"])
    return {"small": small, "pair": pair, "sgd": linear(True), "sgd_forward": linear(False)}


def reset(fixtures: Path) -> None:
    shutil.rmtree(fixtures, ignore_errors=True)
