"""Calibration: run the float graph natively on sample inputs and collect the value ranges quantize-int8 needs.

The graph is compiled once with the observed tensors (each layer group's input and output) as
extra outputs, then swept over the data in batches: once for min/max, and once more for the
|x| histograms of the `percentile` and `entropy` methods (their bins span the min/max range).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, check_signature
from kcompile.passes.quant_plan import observed_values, value_keys
from kcompile.passes.quant_ranges import Observer, check_method

BATCH = 256


class CalibrationError(ValueError):
    """Calibration data that cannot calibrate the graph (shape, dtype, count, NaN/inf)."""


def check_calibration_data(graph: Graph, data, what: str = "calibration data") -> list:
    """data (one array, a list in input order, or a dict by input name) -> checked f32 arrays."""
    if isinstance(data, np.ndarray) or not isinstance(data, (list, tuple, dict)):
        data = [data]
    try:
        arrays, batch = check_signature(f"{what} for graph @{graph.name}",
                                        [(v.name, v.type) for v in graph.inputs], data, convert=True)
    except (ValueError, TypeError) as e:
        raise CalibrationError(str(e)) from None
    if not batch:
        raise CalibrationError(f"{what} for graph @{graph.name} holds no samples (batch size {batch}); "
                               "give at least one")
    for v, a in zip(graph.inputs, arrays):
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(np.size(a) - np.isfinite(a).sum())
            raise CalibrationError(f"{what} for input '{v.name}' holds {bad} NaN or infinite value(s); "
                                   "ranges from them would be meaningless")
    return arrays


def observing_graph(graph: Graph) -> tuple:
    """(graph whose outputs are the original ones then the observed values, their keys)."""
    observed = observed_values(graph)
    keys = value_keys(graph)
    names = list(graph.output_names) + [f"observe_{i}" for i in range(len(observed))]
    g = Graph(graph.name, graph.inputs, graph.params, graph.nodes, list(graph.outputs) + observed,
              graph.param_values, names, graph.meta)
    return g, [keys[v] for v in observed]


def calibrate(graph: Graph, data, method: str = "minmax", batch_size: int = BATCH, backend: str = "native",
              percentile: float = 99.999) -> dict:
    """{value key: (low, high)} for every tensor quantize-int8 quantizes, observed on `data`."""
    check_method(method)
    arrays = check_calibration_data(graph, data)
    g, keys = observing_graph(graph)
    if not keys:
        return {}
    run = runner(g, backend)
    observers = [Observer(method, percentile) for _ in keys]
    sweeps = ["observe_minmax"] + (["observe_histogram"] if observers[0].needs_histogram else [])
    first = len(graph.outputs)
    for sweep in sweeps:
        for start in range(0, len(arrays[0]), batch_size):
            outs = run([a[start:start + batch_size] for a in arrays])
            for obs, a in zip(observers, outs[first:]):
                getattr(obs, sweep)(a)
    return {k: tuple(float(x) for x in obs.range()) for k, obs in zip(keys, observers)}


def runner(graph: Graph, backend: str = "native"):
    """callable(list of input arrays) -> list of output arrays, compiled natively or by the reference."""
    if backend == "reference":
        return lambda inputs: evaluate(graph, inputs)
    if backend != "native":
        raise ValueError(f"unknown backend {backend!r}; expected 'native' or 'reference'")
    from .jit import compile_graph
    return compile_graph(graph)


def evaluate(graph: Graph, inputs: list) -> list:
    """Run graph with the ops' NumPy references (compiler may not import runtime's interpreter)."""
    from kcompile.ir import get_op
    batch = len(inputs[0]) if inputs else None
    env = {**dict(zip(graph.inputs, inputs)), **{p: graph.param_values[p.param_name] for p in graph.params}}
    for n in graph.nodes:
        env.update(zip(n.outputs, get_op(n.op).reference([env[v] for v in n.inputs], n.attrs, batch)))
    return [np.asarray(env[v]) for v in graph.outputs]
