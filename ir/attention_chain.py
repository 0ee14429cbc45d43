"""The node chain multi-head attention traces to, found from its last node (used by the fuse-attention
pass and by the verifier of a fused node of kind "attention").

    q = transpose(Q, [0,2,1,3])   k = transpose(K, [0,2,1,3])   v = transpose(V, [0,2,1,3])
    s = matmul(q, k, transpose_b)   p = softmax(s, axis=3)   o = matmul(p, v)   y = transpose(o, [0,2,1,3])

Q [N,T,H,D], K [N,S,H,D] and V [N,S,H,Dv] keep the heads in the middle, as the projections write them.
"""
from __future__ import annotations

from dataclasses import dataclass

HEADS_MIDDLE = (0, 2, 1, 3)   # [N,T,H,D] <-> [N,H,T,D]


@dataclass(frozen=True)
class AttentionChain:
    nodes: tuple    # (q, k, s, p, v, o, y) nodes in that order
    q: object       # the Values the chain reads: Q [N,T,H,D], K [N,S,H,D], V [N,S,H,Dv]
    k: object
    v: object


def _swap(node) -> bool:
    return node is not None and node.op == "transpose" and tuple(node.attrs["perm"]) == HEADS_MIDDLE


def _matmul(node, transpose_b: bool) -> bool:
    return (node is not None and node.op == "matmul" and not node.attrs["transpose_a"]
            and bool(node.attrs["transpose_b"]) == transpose_b)


def match_attention(last) -> AttentionChain | None:
    """The chain ending at node `last`, or None."""
    if not _swap(last):
        return None
    o = last.inputs[0].producer
    if not _matmul(o, False):
        return None
    p, vt = o.inputs[0].producer, o.inputs[1].producer
    if p is None or p.op != "softmax" or p.attrs["axis"] % 4 != 3 or not _swap(vt):
        return None
    s = p.inputs[0].producer
    if not _matmul(s, True):
        return None
    qt, kt = s.inputs[0].producer, s.inputs[1].producer
    if not (_swap(qt) and _swap(kt)):
        return None
    nodes = (qt, kt, s, p, vt, o, last)
    q, k, v = qt.inputs[0], kt.inputs[0], vt.inputs[0]
    (n, t, h, d), (nk, sk, hk, dk), (nv, sv, hv, _) = q.type.shape, k.type.shape, v.type.shape
    if len(set(nodes)) != 7 or not (n == nk == nv and h == hk == hv and d == dk and sk == sv):
        return None   # broadcasting batch/head axes: the plain nodes handle those
    return AttentionChain(nodes, q, k, v)
