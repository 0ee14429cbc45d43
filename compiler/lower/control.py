"""scan as one native loop: the body is compiled once, as an internal function, and called T times.

Each step fills two pointer tables (the body's inputs and outputs) and calls the body with the
scan's scratch as its workspace. Carries ping-pong between the carry's output buffer and a spare
scratch buffer, chosen by parity so that the last step writes the output buffer; step 0 reads
the initial carries in place. Scanned slices are addressed in place over axis 0; over axis > 0
(batch-major [N, T, F], see ir/ops/control.py) each x_t is gathered into a contiguous step buffer
and each y_t scattered back, one contiguous run of the inner dims at a time. The trip count is the
scanned axis's run-time extent, so a dynamic length T (compiler/dynamic_dims.py) needs no recompile.
"""
from __future__ import annotations

from llvmlite import ir

from ..loops import I1, I8, I32, copy_bytes, entry_alloca, for_range, i64, product
from . import lowering, run_time_extents

I8P = I8.as_pointer()


run_time_extents("scan")   # trip count and slices from Buffer.dims; the body itself must be free of T


@lowering("scan")
def lower_scan(ctx):
    from kcompile.passes.regions import scan_scratch

    from ..codegen import region_function  # (codegen imports this table)
    b, node = ctx.builder, ctx.node
    layout = scan_scratch(node)
    nc, nx, axis = node.attrs["num_carries"], node.attrs["num_xs"], node.attrs["axis"]
    length = ctx.ins[nc].dims[axis]   # run-time: a dynamic T is read from the inputs' shapes
    last = b.sub(length, i64(1))
    body_fn = region_function(ctx.module, layout.body, ctx.target, ctx.libraries, _symbol(ctx.module, layout.body))
    null = ir.Constant(I8P, None)
    static, batched = ctx.scratch or (null, null)  # none when the body needs no workspace and nothing ping-pongs
    in_tab = entry_alloca(b, ir.ArrayType(I8P, len(node.inputs)), name="scan.ins")
    out_tab = entry_alloca(b, ir.ArrayType(I8P, len(node.outputs)), name="scan.outs")

    def slot(key):
        region, off = layout.slots[key]
        return b.gep(static, [i64(off)]) if region == "static" else b.gep(batched, [b.mul(i64(off), ctx.batch)])

    def put(table, k, ptr):
        b.store(b.bitcast(ptr, I8P), b.gep(table, [ir.Constant(I32, 0), ir.Constant(I32, k)]))

    with for_range(b, length, name="scan.t") as t:
        tt = b.sub(last, t) if node.attrs["reverse"] else t
        # the step writing carries into the output buffer is the last one: parity of (T-1-t)
        spare_now = b.trunc(b.and_(b.sub(last, t), i64(1)), I1)
        first = b.icmp_signed("==", t, i64(0))
        for i in range(nc):
            out, spare = b.bitcast(ctx.outs[i].ptr, I8P), slot(("carry", i))
            previous = b.select(spare_now, out, spare)
            put(in_tab, i, b.select(first, b.bitcast(ctx.ins[i].ptr, I8P), previous))
            put(out_tab, i, b.select(spare_now, spare, out))
        for i in range(nx):
            x = ctx.ins[nc + i]
            put(in_tab, nc + i, _slice(b, x, axis, tt) if axis == 0 else _move(b, ctx, x, axis, tt, slot(("x", i)), True))
        for k in range(nc + nx, len(node.inputs)):
            put(in_tab, k, ctx.ins[k].ptr)
        ys = list(enumerate(ctx.outs[nc:]))
        for j, y in ys:
            put(out_tab, nc + j, _slice(b, y, axis, tt) if axis == 0 else slot(("y", j)))
        table = [ir.Constant(I32, 0), ir.Constant(I32, 0)]
        rc = b.call(body_fn, [b.gep(in_tab, table), b.gep(out_tab, table), batched, static, ctx.batch, ctx.nthreads])
        b.store(b.select(b.icmp_signed("!=", rc, ir.Constant(I32, 0)), rc, b.load(ctx.status)), ctx.status)
        if axis > 0:
            for j, y in ys:
                _move(b, ctx, y, axis, tt, slot(("y", j)), False)


def _inner(b, buf, axis: int):
    """Elements per step in one run: the product of the dims after the scan axis (run-time values)."""
    return product(b, buf.dims[axis + 1:])


def _slice(b, buf, axis: int, t):
    """Element pointer to step t's slice of a [T, ...] buffer (axis 0: contiguous in place)."""
    return b.gep(buf.ptr, [b.mul(t, _inner(b, buf, axis))])


def _move(b, ctx, buf, axis: int, t, step_buf, gather: bool):
    """Copy step t's slice between `buf` ([outer..., T, inner...]) and a contiguous step buffer."""
    inner, length = _inner(b, buf, axis), buf.dims[axis]
    nbytes = b.mul(inner, i64(buf.dtype.itemsize))
    step = b.bitcast(step_buf, buf.ptr.type)
    with for_range(b, product(b, buf.dims[:axis]), name="scan.o") as o:
        seq = b.gep(buf.ptr, [b.mul(b.add(b.mul(o, length), t), inner)])
        flat = b.gep(step, [b.mul(o, inner)])
        dst, src = (flat, seq) if gather else (seq, flat)
        copy_bytes(b, b.bitcast(dst, I8P), b.bitcast(src, I8P), nbytes)
    return step_buf


def _symbol(module, body) -> str:
    base, k = f"scan.{body.name}", 0
    while f"{base}.{k}" in module.globals:
        k += 1
    return f"{base}.{k}"
