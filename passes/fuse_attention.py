"""Pass "fuse-attention": outline softmax(Q K^T) V with its head transposes into one fused kernel.

Multi-head attention traces to the chain of ir/attention_chain.py. Node by node, it copies Q, K, V and
the output once more each (the four transposes) and writes and reads the [N,H,T,S] scores. Outlined as
fused(Q, K, V) {kind="attention"}, its kernel (compiler/kernels/attention.py) reads Q, K, V in place
through strides and keeps one (batch item, head)'s scores in a buffer on its stack.

Only where every intermediate value has no reader outside the chain and is no graph output (so not in
a train step, whose backward reads the softmax), the dims besides the batch are static, the dtype is
f32, and one head's scores and K^T fit their stack buffers. Runs after "fuse": that pass leaves the chain alone
(no member is elementwise, and softmax is no reduction a loop would feed).
"""
from __future__ import annotations

from kcompile.ir import Graph
from kcompile.ir.attention_chain import match_attention
from kcompile.ir.dtypes import f32

from .fusion import Group
from .fusion_outline import outline
from .manager import register_pass

MAX_SCORES = 1 << 16   # T*S (scores) and D*S (K^T) elements of one head: 256 KiB each on a worker's stack


@register_pass("fuse-attention")
def fuse_attention(graph: Graph) -> Graph:
    """The graph with each attention chain that only it reads outlined into a fused attention node."""
    users, outputs = graph.users(), set(graph.outputs)
    groups, order = [], {n: i for i, n in enumerate(graph.nodes)}
    for node in graph.nodes:
        chain = match_attention(node)
        if chain is not None and _fusible(chain, users, outputs):
            groups.append(Group("attention", tuple(sorted(chain.nodes, key=order.__getitem__))))
    return outline(graph, groups) if groups else graph


def _fusible(chain, users, outputs) -> bool:
    inner = [n.outputs[0] for n in chain.nodes[:-1]]
    private = all(v not in outputs and all(u in chain.nodes for u in users.get(v, [])) for v in inner)
    (_, t, h, d), s, dv = chain.q.type.shape, chain.k.type.shape[1], chain.v.type.shape[3]
    static = all(isinstance(x, int) for x in (t, h, d, s, dv))
    same_dtype = all(v.type.dtype == f32 for v in (chain.q, chain.k, chain.v))
    return private and static and same_dtype and max(t, d) * s <= MAX_SCORES
