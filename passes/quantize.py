"""quantize-int8: rewrite a float graph into a static int8 graph from per-tensor value ranges.

Each layer group (quant_plan.Group) becomes quantize (unless its input already is int8) ->
matmul_integer / conv2d_integer -> add of an i32 bias (scale = input scale * weight scale) ->
requantize to the next int8 tensor (relu folded in) when an int8 consumer reads it, or dequantize
to f32 when only float ops do. Weights are symmetric int8 per output channel; activations
asymmetric int8 per tensor. reshape, max_pool2d and concat carry int8 values when their type
rules allow; every other op stays float, fed through dequantize. Fusing the epilogue is fusion's call.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, Node, Value
from kcompile.ir.errors import IRError

from .canonicalize import dce
from .manager import register_pass
from .quant_plan import INT8_VIEWS, Group, accepts_int8, find_groups, static_value, value_keys
from .quant_ranges import activation_qparams, weight_qparams
from .quant_emit import Emitter


@register_pass("quantize-int8")
def quantize_int8(graph: Graph, ranges: dict | None = None, float_layers=(), per_channel: bool = True) -> Graph:
    """Static int8: weights per output channel, activations per tensor from `ranges` (or graph.meta)."""
    ranges = ranges if ranges is not None else graph.meta.get("quant_ranges")
    if not ranges:
        raise IRError(f"quantize-int8 on graph @{graph.name}: no value ranges; calibrate first "
                      "(kcompile.compiler.calibrate, or --calibration-data on the command line)")
    q = _Quantizer(graph, dict(ranges), set(float_layers), per_channel)
    return q.run()


class _Quantizer:
    def __init__(self, graph: Graph, ranges: dict, float_layers: set, per_channel: bool):
        self.graph, self.ranges, self.per_channel = graph, ranges, per_channel
        self.keys = value_keys(graph)
        self.em = Emitter(graph)
        self.groups = {g.anchor: g for g in find_groups(graph)}
        self.skipped = {}                               # layer -> why it stays float
        for g in self.groups.values():
            why = ("kept in float on request" if g.layer in float_layers else
                   f"no calibrated range for its {'input' if self._range(g.input) is None else 'output'}"
                   if self._range(g.input) is None or self._range(g.output) is None else None)
            if why:
                self.skipped[g.layer] = why
        self.quantized = [g for g in self.groups.values() if g.layer not in self.skipped]
        self.inner = {n for g in self.quantized for n in (g.anchor, g.bias, g.relu) if n is not None}
        self.int8_readers = {g.input for g in self.quantized}
        for n in graph.nodes:
            if n.op in INT8_VIEWS:
                self.int8_readers.update(n.inputs)

    def _range(self, v: Value):
        return self.ranges.get(self.keys.get(v))

    def run(self) -> Graph:
        em = self.em
        for node in self.graph.nodes:
            group = self.groups.get(node)
            if group is not None and node in self.inner:
                self._group(group)
            elif node in self.inner:
                continue                                # bias add / relu: emitted with their anchor
            elif not self._int8_view(node):
                em.float_node(node)
        out = used_params_only(dce(em.finish([em.float_of(v) for v in self.graph.outputs])))
        out.meta["quantization"] = self._report(out)
        return out

    def _activation(self, v: Value) -> tuple:
        scale, zp = activation_qparams(*self._range(v))
        return np.float32(scale), np.int8(zp)

    def _group(self, g: Group):
        em, loc = self.em, g.layer
        xq, sx, zx = self.em.int8_of(g.input, self._activation(g.input), loc)
        wq, sw = self._weight(g)
        zero8 = em.const(np.int8(0), loc)
        attrs = {} if g.anchor.op == "matmul" else dict(g.anchor.attrs)
        op = "matmul_integer" if g.anchor.op == "matmul" else "conv2d_integer"
        acc = em.emit(op, (xq, wq, em.const(np.int8(zx), loc), zero8), attrs, loc)
        acc_scale = (np.float32(sx) * sw).astype(np.float32)
        bias = g.bias_param()
        if bias is not None:
            b = np.asarray(self.graph.param_values[bias.param_name], np.float32)
            b32 = np.clip(np.rint(b / acc_scale), -2**31, 2**31 - 1).astype(np.int32)
            acc = em.emit("add", (acc, em.param(f"{bias.param_name}_int32", b32)), {}, loc)
        if g.output in self.int8_readers:
            sy, zy = self._activation(g.output)
            mult = (acc_scale / np.float32(sy)).astype(np.float32)
            y = em.emit("requantize", (acc, em.const(mult, loc), em.const(np.int8(zy), loc)),
                        {"relu": g.relu is not None}, loc)
            em.set_int8(g.output, y, sy, zy)
        else:                                           # only float readers: skip the 8-bit round trip
            zeros = em.const(np.zeros(acc_scale.shape, np.int32), loc)
            y = em.emit("dequantize", (acc, em.const(acc_scale, loc), zeros), {}, loc)
            em.set_float(g.output, em.emit("relu", (y,), {}, loc) if g.relu is not None else y)

    def _weight(self, g: Group) -> tuple:
        """(int8 weight Value, f32 scales [C] or 0-d): quantized here, or already int8 in the model."""
        em, w = self.em, g.weight
        axis = -1 if self.per_channel else None
        if w.is_param:
            q, s = weight_qparams(self.graph.param_values[w.param_name], axis)
            return em.param(f"{w.param_name}_int8", q), s
        deq = w.producer
        zp = static_value(deq.inputs[2], self.graph.param_values)
        if np.any(zp != 0):
            raise IRError(f"quantize-int8: layer '{g.layer}' has an int8 weight with a nonzero zero point")
        s = static_value(deq.inputs[1], self.graph.param_values).astype(np.float32)
        return em.keep(deq.inputs[0]), s

    def _int8_view(self, node: Node) -> bool:
        """Emit a layout op / max pool on int8 values when its input is int8 and its type rule allows."""
        em = self.em
        if node.op not in INT8_VIEWS or not all(em.is_int8(v) for v in node.inputs):
            return False
        params = {em.qparams(v) for v in node.inputs}
        if len(params) != 1 or not accepts_int8(node.op, node, em.int8(node.inputs[0])):
            return False                                # mixed scales (concat) or a float-only op
        (s, z), = params
        y = em.emit(node.op, tuple(em.int8(v) for v in node.inputs), node.attrs, node.name)
        em.set_int8(node.outputs[0], y, s, z)
        return True

    def _report(self, out: Graph) -> dict:
        return {"int8": [g.layer for g in self.quantized],
                "float": [{"layer": k, "reason": v} for k, v in self.skipped.items()]
                + float_ops(out, exclude=self.skipped),
                "weight_bytes_before": weight_bytes(self.graph), "weight_bytes_after": weight_bytes(out)}


# ops that move or build data without arithmetic: their being float is no loss worth reporting
NOT_ARITHMETIC = {"constant", "reshape", "expand_dims", "squeeze", "transpose", "concat", "slice",
                  "broadcast_to", "split", "pad", "quantize", "dequantize", "cast"}


def float_ops(graph: Graph, exclude=()) -> list:
    """[{layer, reason}] for each layer with float arithmetic left in graph."""
    ops: dict = {}
    for n in graph.nodes:
        if n.op not in NOT_ARITHMETIC and any(v.dtype.is_float for v in n.outputs):
            ops.setdefault(n.name or n.op, []).append(n.op)
    return [{"layer": k, "reason": "; ".join(_why_float(op) for op in dict.fromkeys(v))}
            for k, v in ops.items() if k not in exclude]


def _why_float(op: str) -> str:
    if op in ("matmul", "conv2d"):   # not a group: no parameter weight, transposed, or batched
        return f"{op}: its weight is not a 2-d/4-d parameter (or it is transposed), kept in float"
    return f"{op}: no integer form, kept in float"


def used_params_only(graph: Graph) -> Graph:
    """graph without the parameters no node reads (the float weights that were replaced)."""
    used = {v for n in graph.nodes for v in n.inputs if v.is_param} | {v for v in graph.outputs if v.is_param}
    params = [p for p in graph.params if p in used]
    return Graph(graph.name, graph.inputs, params, graph.nodes, graph.outputs,
                 {p.param_name: graph.param_values[p.param_name] for p in params if p.param_name in graph.param_values},
                 graph.output_names, dict(graph.meta))


def weight_bytes(graph: Graph) -> int:
    """Bytes of the parameters and of the non-scalar constants (per-channel scales) the graph reads."""
    used = {p for n in graph.nodes for p in n.inputs if p.is_param}
    consts = [n.attrs["value"] for n in graph.nodes if n.op == "constant" and n.attrs["value"].ndim > 0]
    return int(sum(np.asarray(graph.param_values[p.param_name]).nbytes for p in used)
               + sum(c.nbytes for c in consts))
