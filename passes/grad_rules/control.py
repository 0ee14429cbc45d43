"""VJP of scan: a forward scan that also stores each step's carries, then a reverse scan of the body's VJP.

The backward body is the forward body inlined and differentiated by kcompile's own autodiff (so
the rule holds for any differentiable body, and the backward scan is differentiable again where
the body's rules are):

    bwd(dc..., dk_acc..., c_t..., x_t..., dy_t..., k...) -> (dc_prev..., dk_acc + dk_t..., dx_t...)

run over the stored carries, the xs and the ys' cotangents in the opposite direction; only float
carries, xs and constants get cotangents (integers carry no gradient).

The forward scan also stores the result of every matmul in the body (its residuals, as JAX's scan
keeps them): the backward body reads them instead of recomputing them, so an LSTM's backward step
runs two GEMMs (dz @ U^T and h^T @ dz), not three. Matmul's VJP never reads its own result, so the
recomputing matmul is dead once its result is replaced (canonicalize drops it).
"""
from __future__ import annotations

from kcompile.ir import GraphBuilder, Node

from . import defvjp
from ._emit import zeros


def _as_list(outs) -> list:
    return list(outs) if isinstance(outs, tuple) else [outs]


@defvjp("scan")
def _scan(b, node, g):
    from ..regions import with_outputs  # (passes.regions imports the manager, which imports every pass)
    body, nc, nx = node.attrs["body"], node.attrs["num_carries"], node.attrs["num_xs"]
    loop = {"axis": node.attrs["axis"]}
    g = g if isinstance(g, list) else [g]
    carries, xs, consts = node.inputs[:nc], node.inputs[nc:nc + nx], node.inputs[nc + nx:]
    ny = len(node.outputs) - nc
    diff_c = [i for i, v in enumerate(carries) if v.dtype.is_float]
    diff_x = [i for i, v in enumerate(xs) if v.dtype.is_float]
    diff_k = [i for i, v in enumerate(consts) if v.dtype.is_float]
    if not (diff_c or diff_x or diff_k):
        return [None] * len(node.inputs)
    fwd, residuals = [], _residuals(body) if nc else []
    if nc:  # recompute the forward pass, keeping the carries each step started from (and the residuals)
        stored = with_outputs(body, list(body.inputs[:nc]) + residuals, "stored_carry")
        fwd = _as_list(b.scan(*node.inputs, body=stored, num_carries=nc, num_xs=nx,
                              reverse=node.attrs["reverse"], **loop))[nc + ny:]
    float_y = [j for j in range(ny) if node.outputs[nc + j].dtype.is_float]
    bwd_body = _backward_body(body, nc, nx, diff_c, diff_x, diff_k, float_y, residuals)
    init = [g[i] for i in diff_c] + [zeros(b, consts[k].type, like=consts[k]) for k in diff_k]
    scanned = fwd + list(xs) + [g[nc + j] for j in float_y]
    res = _as_list(b.scan(*init, *scanned, *consts, body=bwd_body, num_carries=len(init), num_xs=len(scanned),
                          reverse=not node.attrs["reverse"], **loop))
    grads = [None] * len(node.inputs)
    for slot, i in zip(res, diff_c):
        grads[i] = slot
    for slot, k in zip(res[len(diff_c):], diff_k):
        grads[nc + nx + k] = slot
    for slot, i in zip(res[len(init):], diff_x):
        grads[nc + i] = slot
    return grads


def _residuals(body) -> list:
    """The body's values worth storing per step rather than recomputing: every float matmul's result."""
    return [n.outputs[0] for n in body.nodes if n.op == "matmul" and n.outputs[0].dtype.is_float]


def _backward_body(body, nc, nx, diff_c, diff_x, diff_k, float_y, residuals=()):
    from ..autodiff import vjp  # (autodiff imports this table)
    from ..regions import inline_region
    bb = GraphBuilder(f"{body.name}_vjp")
    consts = body.inputs[nc + nx:]
    dcs = [bb.input(f"dc{i}", body.outputs[i].type) for i in diff_c]
    acc = [bb.input(f"dk_acc{k}", consts[k].type) for k in diff_k]
    cs = [bb.input(f"c{i}", v.type) for i, v in enumerate(body.inputs[:nc])]
    rs = [bb.input(f"r{i}", v.type) for i, v in enumerate(residuals)]
    xt = [bb.input(f"x{i}", v.type) for i, v in enumerate(body.inputs[nc:nc + nx])]
    dys = [bb.input(f"dy{j}", body.outputs[nc + j].type) for j in float_y]
    ks = [bb.input(f"k{k}", v.type) for k, v in enumerate(consts)]
    env: dict = {}
    outs = inline_region(bb, body, cs + xt + ks, env)
    seeds = list(zip([outs[i] for i in diff_c], dcs)) + list(zip([outs[nc + j] for j in float_y], dys))
    grads = vjp(bb, seeds, [cs[i] for i in diff_c] + [ks[k] for k in diff_k] + [xt[i] for i in diff_x])
    split = len(diff_c) + len(diff_k)
    dc_prev, dk_t, dx_t = grads[:len(diff_c)], grads[len(diff_c):split], grads[split:]
    names = [f"dc{i}" for i in diff_c] + [f"dk{k}" for k in diff_k] + [f"dx{i}" for i in diff_x]
    graph = bb.build(dc_prev + [bb.add(a, d) for a, d in zip(acc, dk_t)] + dx_t, names)
    return _reading_residuals(graph, {env[v]: r for v, r in zip(residuals, rs)})


def _reading_residuals(graph, stored: dict):
    """graph with each recomputed residual's uses reading the stored one (its producer left dead)."""
    from ..rewrite import rebuilt
    if not stored:
        return graph
    env, nodes = dict(stored), []
    for node in graph.nodes:
        ins = [env.get(v, v) for v in node.inputs]
        new = node if all(a is b for a, b in zip(ins, node.inputs)) else \
            Node(node.op, ins, node.attrs, [v.type for v in node.outputs], node.name)
        env.update((old, v) for old, v in zip(node.outputs, new.outputs) if old not in stored)
        nodes.append(new)
    return rebuilt(graph, nodes, [env.get(v, v) for v in graph.outputs])
