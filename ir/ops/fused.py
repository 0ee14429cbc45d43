"""fused: nodes the `fuse` pass outlined into one kernel; its region (`body`) holds them.

    %y = fused(%x, %w, %b) {body=graph @...(...) {...}, kind="epilogue", bias=2, activation="relu",
                            in_kernel=2} : f32[N,13]

kind "loop"      elementwise nodes computed in one loop over the output, nothing stored in between.
kind "epilogue"  an anchor (matmul/convolution: the body's first computing node) and the elementwise
                 nodes after it, applied to the anchor's output: the first `in_kernel` of them by the
                 anchor's kernel on the tile in registers (an add of body input `bias`, then the
                 `activation`: relu, or for an integer anchor a last requantize to 8 bits), the
                 others in place after the kernel. The fused output's dtype may
                 differ from the anchor's only when the kernel applies the whole epilogue.
                 pool=k: after an integer convolution's in-kernel requantize, a last k x k, stride k,
                 'valid' max_pool2d the kernel applies too (the max of the i32 sums, requantized once:
                 passes/fuse_int8_pool.py checks the multiplier is positive); the output is pooled.
                 A float conv2d's whole bias (+ relu) epilogue takes one the same way (the max of its
                 finished rows: exact, max commutes with both; passes/fuse_conv_pool.py).
kind "prologue"  elementwise nodes read inline by a reduction (the body's last node): never stored.
kind "attention" softmax(Q K^T) V over heads-in-the-middle layouts (ir/attention_chain.py): one kernel
                 that reads Q, K, V in place and never stores the scores (passes/fuse_attention.py).

One-element constants live inside the body (immediates); everything else the body reads is an
input. The op runs its body (reference) and is not differentiable: fusion runs after autodiff.
"""
from __future__ import annotations

from ..interpreter import run
from ..attention_chain import match_attention
from ..registry import OPS, Attr, defop
from ._util import require

KINDS = ("loop", "epilogue", "prologue", "attention")
# what an anchor's kernel applies in registers after the bias (kernels/epilogue.py; "requantize": an
# integer anchor's kernel requantizes its i32 tile to 8 bits and writes those, kernels/int8_microkernel.py)
ACTIVATIONS = ("linear", "relu", "requantize")
POOL_ANCHORS = ("conv2d_integer", "conv2d")   # anchors whose kernel can take a last max pool (pool=k)


def kernel_requantize(node) -> bool:
    """A requantize a GEMM epilogue can apply: its scale runs along the last axis (or is one scalar)."""
    if node.op != "requantize":
        return False
    acc, mult = node.inputs[0].type, node.inputs[1].type
    return mult.rank == 0 or node.attrs["axis"] % acc.rank == acc.rank - 1


def computing_nodes(body) -> list:
    """The body's nodes other than its (one-element) constants, in order."""
    return [n for n in body.nodes if n.op != "constant"]


def reads_overwritten(anchor, members, in_kernel: int) -> bool:
    """Whether a member after the first `in_kernel` reads a value the kernel does not keep: it writes
    only the last claimed member's result, over the anchor's output."""
    gone = {anchor.outputs[0]} | {n.outputs[0] for n in members[:in_kernel - 1]}
    return any(v in gone for n in members[in_kernel:] for v in n.inputs)


def _has(node, trait) -> bool:
    return OPS[node.op].has(trait)


def fused_pool(node, k: int) -> bool:
    """A k x k, stride k, 'valid' max_pool2d a convolution's kernel can apply (pool=k)."""
    a = node.attrs
    return (node.op == "max_pool2d" and k >= 2 and tuple(a["pool_size"]) == (k, k)
            and tuple(a["strides"]) == (k, k) and a["padding"] == "valid")


def _check_shape_of_kind(body, kind, pool: int = 0):
    nodes = computing_nodes(body)
    require(nodes, f"body @{body.name} computes nothing")
    require(len(body.outputs) == 1, f"body @{body.name} has {len(body.outputs)} outputs; a fused kernel writes one")
    for n in body.nodes:
        require(n.op != "constant" or n.outputs[0].type.numel() == 1,
                f"body @{body.name}: constant {n.outputs[0].type} should be an input (only one-element constants "
                "are immediates)")
    head, tail = ((nodes[0], nodes[1:]) if kind == "epilogue" else
                  (nodes[-1], nodes[:-1]) if kind == "prologue" else (None, nodes))
    if kind == "epilogue":
        require(_has(head, "anchor"), f"an epilogue's first node must be an anchor (matmul/conv), got {head.op}")
    if kind == "prologue":
        require(_has(head, "reduction"), f"a prologue's last node must be a reduction, got {head.op}")
    if pool:
        require(kind == "epilogue" and head.op in POOL_ANCHORS and len(tail) >= 2 and fused_pool(tail[-1], pool)
                and tail[-1].inputs[0] is tail[-2].outputs[0],
                f"pool={pool}: the body must be a conv2d's or an integer convolution's epilogue ending in a "
                f"{pool}x{pool}, stride-k 'valid' max_pool2d of its last member")
    for n in tail[:len(tail) - bool(pool)]:
        last_requantize = kind == "epilogue" and n is tail[-1 - bool(pool)] and kernel_requantize(n)
        require(_has(n, "elementwise") or last_requantize, f"a fused {kind} holds elementwise nodes besides its "
                f"{'anchor' if kind == 'epilogue' else 'reduction'} (and, last in an epilogue, a requantize "
                f"along the last axis); got {n.op}")
    require(body.outputs[0] is nodes[-1].outputs[0], f"body @{body.name} must return its last node's result")
    return head, tail


def _check_epilogue(body, attrs, head, tail):
    """in_kernel, bias and activation describe the leading members exactly (the kernel trusts them)."""
    bias, act, k, pool = attrs["bias"], attrs["activation"], attrs["in_kernel"], attrs["pool"]
    require(not pool or (k == len(tail) and (act == "requantize") == (head.op == "conv2d_integer")),
            f"pool={pool} needs the whole epilogue in the kernel, ending in its requantize for an integer "
            "convolution")
    want = (bias >= 0) + (act != "linear") + bool(pool)
    require(k == want, f"in_kernel={k}, but bias={bias} and activation={act!r} describe {want} node(s)")
    require(k <= len(tail), f"in_kernel={k} but the epilogue has {len(tail)} node(s)")
    cur = head.outputs[0]
    if bias >= 0:
        require(bias < len(body.inputs), f"bias={bias} but the body has {len(body.inputs)} inputs")
        add, b = tail[0], body.inputs[bias]
        require(add.op == "add" and set(add.inputs) == {cur, b} and cur is not b,
                f"bias={bias}: the first epilogue node must add body input {bias} to the anchor's result")
        require(b.type.rank >= 1 and all(d == 1 for d in b.type.shape[:-1])
                and b.type.shape[-1] == cur.type.shape[-1] and b.type.dtype == cur.type.dtype,
                f"bias {b.type} must be a vector along the last axis of {cur.type}")
        cur = add.outputs[0]
    if act != "linear":
        node = tail[k - 1 - bool(pool)]
        require(node.op == act and node.inputs[0] is cur, f"activation={act!r}: epilogue node {k - 1} must be {act} "
                "of the previous result")
    require(k == 0 or not reads_overwritten(head, tail, k),
            f"in_kernel={k}: a later epilogue node reads a value the kernel overwrites")
    if k < len(tail):
        require(body.outputs[0].type.dtype == head.outputs[0].type.dtype,
                "an epilogue that changes the dtype must run entirely in the kernel (in_kernel = all of it)")


def _check_attention(body):
    nodes = computing_nodes(body)
    chain = match_attention(nodes[-1]) if nodes else None
    require(chain is not None and set(chain.nodes) == set(nodes) and body.outputs[0] is nodes[-1].outputs[0],
            f"a fused attention body @{body.name} must be exactly transpose, matmul, softmax, matmul, transpose "
            "as ir/attention_chain.py describes")
    require({chain.q, chain.k, chain.v} <= set(body.inputs), f"body @{body.name}: Q, K and V must be body inputs")


def _infer(types, attrs):
    body, kind = attrs["body"], attrs["kind"]
    require(len(types) == len(body.inputs), f"body @{body.name} takes {len(body.inputs)} input(s), got {len(types)}")
    for i, (t, v) in enumerate(zip(types, body.inputs)):
        require(t == v.type, f"input {i} is {t} but body @{body.name} expects {v.type}")
    if kind == "attention":
        _check_attention(body)
    else:
        head, tail = _check_shape_of_kind(body, kind, attrs["pool"])
    if kind == "epilogue":
        _check_epilogue(body, attrs, head, tail)
    else:
        require(attrs["in_kernel"] == 0 and attrs["bias"] == -1 and attrs["activation"] == "linear"
                and attrs["pool"] == 0,
                f"a fused {kind} has no kernel epilogue (in_kernel, bias, activation, pool are for kind 'epilogue')")
    return [v.type for v in body.outputs]


defop("fused", ("*xs",), _infer, lambda xs, attrs, batch: run(attrs["body"], xs, batch=batch),
      attrs={"body": Attr("graph"), "kind": Attr("str", "loop", KINDS), "bias": Attr("int", -1),
             "activation": Attr("str", "linear", ACTIVATIONS), "in_kernel": Attr("int", 0),
             "pool": Attr("int", 0)},
      differentiable=False, doc="one kernel: the body's nodes, outlined by the fuse pass (kind: loop, epilogue, "
                                "prologue, attention)")
